-- The operator surface: exact job counts that stay cheap at millions of rows, and the indexes the
-- admin queries walk.

-- Counts by kind and state, maintained from statement-level triggers. A trigger only appends a
-- delta row (no shared counter row is updated, so concurrent claims and completes never wait on
-- each other); coordinators fold the deltas into job_counts every few seconds
-- (job_count_fold), and readers add the unfolded deltas.
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

CREATE FUNCTION job_counts_after_insert_v1() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (kind, state, delta)
    SELECT kind, state, count(*) FROM new_rows GROUP BY kind, state;
    RETURN NULL;
END $$;

CREATE FUNCTION job_counts_after_update_v1() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (kind, state, delta)
    SELECT kind, state, sum(delta)
    FROM (SELECT kind, state, 1 AS delta FROM new_rows
          UNION ALL
          SELECT kind, state, -1 FROM old_rows) AS changes
    GROUP BY kind, state
    HAVING sum(delta) <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION job_counts_after_delete_v1() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (kind, state, delta)
    SELECT kind, state, -count(*) FROM old_rows GROUP BY kind, state;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION job_counts_after_insert_v1();
CREATE TRIGGER jobs_count_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_counts_after_update_v1();
CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION job_counts_after_delete_v1();

-- Jobs that existed before this migration.
INSERT INTO job_counts (kind, state, count) SELECT kind, state, count(*) FROM jobs GROUP BY kind, state;

-- The oldest due job, for queue health.
CREATE INDEX jobs_queued_run_at ON jobs (run_at) WHERE state = 'queued';
-- URL-prefix filters of ListJobs and RequeueDeadJobs.
CREATE INDEX jobs_target_url_prefix ON jobs (target_url text_pattern_ops) WHERE target_url IS NOT NULL;
