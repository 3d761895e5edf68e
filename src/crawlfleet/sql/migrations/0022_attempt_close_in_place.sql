-- Closing an attempt is a HOT update again: done in place on its page, with no new index entries.
-- job_attempts_finished_at (migration 0014) was a B-tree on the column the close sets, so every
-- close wrote a new row version and an entry in each of the table's indexes: 8 WAL records of a
-- no-op job's Complete came from it. A BRIN index summarizes ranges of pages and does not stop a
-- HOT update (PostgreSQL 16 and newer). Attempts are appended in time order and closed in place,
-- so a range of pages covers a short stretch of time; minmax-multi keeps a long attempt that
-- ended late from widening its range to the whole stretch. autosummarize keeps new ranges
-- searchable without waiting for a VACUUM.
DROP INDEX job_attempts_finished_at;
CREATE INDEX job_attempts_finished_at ON job_attempts
    USING brin (finished_at timestamptz_minmax_multi_ops) WITH (pages_per_range = 32, autosummarize = on);
