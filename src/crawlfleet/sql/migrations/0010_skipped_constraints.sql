-- 'skipped' (0009) is terminal: a skipped job has finished_at, and its last attempt ends with the
-- outcome 'skipped'. Every existing row satisfies the new checks (no row can be skipped yet);
-- re-adding them still reads each table once, under the migration's lock.
ALTER TABLE jobs
    DROP CONSTRAINT jobs_finished_iff_terminal,
    ADD CONSTRAINT jobs_finished_iff_terminal CHECK (
        (state IN ('succeeded', 'dead', 'cancelled', 'skipped')) = (finished_at IS NOT NULL));

ALTER TABLE job_attempts
    DROP CONSTRAINT job_attempts_outcome_check,
    ADD CONSTRAINT job_attempts_outcome_check
        CHECK (outcome IN ('running', 'succeeded', 'failed', 'released', 'expired', 'cancelled', 'skipped'));
