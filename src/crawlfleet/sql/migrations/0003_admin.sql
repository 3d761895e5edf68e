-- The operator surface: exact job counts that stay cheap at millions of rows, and the indexes the
-- admin queries walk.

-- Counts by kind and state. Every statement of sql/queries that moves jobs between states also
-- appends its count deltas (a CTE), so no shared counter row is updated and concurrent claims and
-- completes never wait on each other; coordinators fold the deltas into job_counts every few
-- seconds (job_count_fold), and readers add the unfolded deltas. Statement-level triggers with
-- transition tables would catch any writer, but measured at a quarter of the database's CPU on
-- the claim/complete path (bench/queue.py), so the queue's own statements keep the books.
CREATE TABLE job_counts (
    kind   text      NOT NULL,
    state  job_state NOT NULL,
    count  bigint    NOT NULL,
    PRIMARY KEY (kind, state)
);

CREATE TABLE job_count_deltas (
    kind   text      NOT NULL,
    state  job_state NOT NULL,
    delta  bigint    NOT NULL
);

-- Jobs that existed before this migration.
INSERT INTO job_counts (kind, state, count) SELECT kind, state, count(*) FROM jobs GROUP BY kind, state;

-- The oldest due job, for queue health.
CREATE INDEX jobs_queued_run_at ON jobs (run_at) WHERE state = 'queued';
-- URL-prefix filters of ListJobs and RequeueDeadJobs.
CREATE INDEX jobs_target_url_prefix ON jobs (target_url text_pattern_ops) WHERE target_url IS NOT NULL;
