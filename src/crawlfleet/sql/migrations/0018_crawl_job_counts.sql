-- Kept job counts per crawl, by depth, state and error type (of the jobs that ended without a
-- page: the first part of last_error, or the state): GetCrawl, WatchCrawl and ListCrawls read
-- them instead of counting the crawl's jobs (10 s for a crawl of ten million jobs, and 5 s more
-- for its error breakdown).
--
-- Kept like job_counts (migration 0003): writers append deltas, coordinators fold them into
-- crawl_job_counts every few seconds, readers add the deltas not folded yet, so counts are exact
-- and concurrent completes of one crawl never wait on a shared counter row. Unlike job_counts the
-- deltas come from row triggers, not from each statement: every statement that moves a crawl's
-- jobs (claim, complete, fail, reap, cancel, requeue, retention) is covered without touching it,
-- and the triggers' WHEN clauses keep jobs outside crawls free of any cost (no function is called
-- for them). No foreign keys: a key check would take a share lock on the crawl's row, which
-- discovery holds for update while it completes a page.

CREATE TABLE crawl_job_counts (
    crawl_id    bigint    NOT NULL,
    depth       integer   NOT NULL,
    state       job_state NOT NULL,
    -- '' unless the state is dead, cancelled or skipped.
    error_type  text      NOT NULL,
    count       bigint    NOT NULL,
    PRIMARY KEY (crawl_id, depth, state, error_type)
);

CREATE TABLE crawl_job_count_deltas (
    crawl_id    bigint    NOT NULL,
    depth       integer   NOT NULL,
    state       job_state NOT NULL,
    error_type  text      NOT NULL,
    delta       bigint    NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 5000);
CREATE INDEX crawl_job_count_deltas_crawl ON crawl_job_count_deltas (crawl_id);

-- Why a job ended without a page, as GetCrawl reports it; '' for the other states.
CREATE FUNCTION crawlfleet_job_error_type(p_state job_state, p_last_error text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_state IN ('dead', 'cancelled', 'skipped')
                THEN split_part(coalesce(p_last_error, p_state::text), ':', 1) ELSE '' END
$$;

-- One row leaves its (crawl, depth, state, error type) and/or enters another.
CREATE FUNCTION crawlfleet_crawl_job_count_delta() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO crawl_job_count_deltas
        VALUES (NEW.crawl_id, coalesce(NEW.depth, 0), NEW.state, crawlfleet_job_error_type(NEW.state, NEW.last_error), 1);
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO crawl_job_count_deltas
        VALUES (OLD.crawl_id, coalesce(OLD.depth, 0), OLD.state, crawlfleet_job_error_type(OLD.state, OLD.last_error), -1);
    ELSE
        INSERT INTO crawl_job_count_deltas
        SELECT * FROM (VALUES (OLD.crawl_id, coalesce(OLD.depth, 0), OLD.state,
                               crawlfleet_job_error_type(OLD.state, OLD.last_error), -1::bigint),
                              (NEW.crawl_id, coalesce(NEW.depth, 0), NEW.state,
                               crawlfleet_job_error_type(NEW.state, NEW.last_error), 1::bigint)) AS moves
        WHERE moves.column1 IS NOT NULL;
    END IF;
    RETURN NULL;
END
$$;

-- AFTER, so that an insert ON CONFLICT DO NOTHING that inserted nothing counts nothing.
CREATE TRIGGER jobs_crawl_counts_insert AFTER INSERT ON jobs
    FOR EACH ROW WHEN (NEW.crawl_id IS NOT NULL) EXECUTE FUNCTION crawlfleet_crawl_job_count_delta();
CREATE TRIGGER jobs_crawl_counts_update AFTER UPDATE OF state, depth, crawl_id, last_error ON jobs
    FOR EACH ROW WHEN ((OLD.crawl_id IS NOT NULL OR NEW.crawl_id IS NOT NULL)
                       AND (OLD.state IS DISTINCT FROM NEW.state OR OLD.depth IS DISTINCT FROM NEW.depth
                            OR OLD.crawl_id IS DISTINCT FROM NEW.crawl_id
                            OR (NEW.state IN ('dead', 'cancelled', 'skipped')
                                AND OLD.last_error IS DISTINCT FROM NEW.last_error)))
    EXECUTE FUNCTION crawlfleet_crawl_job_count_delta();
CREATE TRIGGER jobs_crawl_counts_delete AFTER DELETE ON jobs
    FOR EACH ROW WHEN (OLD.crawl_id IS NOT NULL) EXECUTE FUNCTION crawlfleet_crawl_job_count_delta();

-- The jobs that exist: counted after the triggers exist, in this transaction, whose locks keep
-- writers of jobs out until it commits (a single read of jobs_crawl; about ten seconds per ten
-- million crawl jobs).
INSERT INTO crawl_job_counts (crawl_id, depth, state, error_type, count)
SELECT crawl_id, coalesce(depth, 0), state, crawlfleet_job_error_type(state, last_error), count(*)
FROM jobs WHERE crawl_id IS NOT NULL GROUP BY 1, 2, 3, 4;
