-- Queue activity by minute (Admin.GetQueueActivity, the dashboard's charts): attempts that ended
-- in a time range are found through their finish time. Partial, so that the running attempts a
-- claim inserts add nothing to it; closing an attempt now updates an index (no longer a HOT
-- update), the price of charts that survive restarts and agree across coordinators.
CREATE INDEX IF NOT EXISTS job_attempts_finished_at ON job_attempts (finished_at) WHERE finished_at IS NOT NULL;
