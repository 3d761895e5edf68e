-- Finished jobs by state in id order, for what walks history: ListJobs filtered by terminal
-- states (newest first), results export (ListResults, oldest first) and retention.
--
-- Before, jobs_finished ordered each state by finished_at, which none of those asks for: a
-- ListJobs page of succeeded jobs walked the primary key back over every newer job of another
-- state (the whole backlog when one is queued: measured at 12,200 live rows, 3,900 buffers a
-- page, bench/admin_depth.py), and retention ordered every expired row by finished_at per batch.
-- Keyed by id the same entries serve all three as one range scan each (ListJobs of succeeded
-- jobs only where the planner does not prefer the primary key: see docs/operations.md). It replaces the old index
-- rather than joining it: the same rows (finished ones) get one entry each, so the claim and
-- complete path maintain no more than before. Retention finds "finished before T" as "created
-- before T (an id bound from jobs_created_at) and finished before T" (a job finishes after it is
-- created), which is the ids at the front of each state's range.
--
-- Rebuilding it reads the table once under the migration's lock (about a minute per ten million
-- finished jobs); the coordinators wait for it at start.
DROP INDEX IF EXISTS jobs_finished;
CREATE INDEX jobs_finished ON jobs (state, id) WHERE finished_at IS NOT NULL;
