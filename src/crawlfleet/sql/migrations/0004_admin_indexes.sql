-- Indexes measured at a million jobs (bench/admin.py): time-window listings walked half the
-- table without an index on created_at; dead-job listings and requeues walked every requeued job.
CREATE INDEX jobs_created_at ON jobs (created_at);
-- Only jobs that die get an entry: no cost on the claim/complete path.
CREATE INDEX jobs_dead_id ON jobs (id) WHERE state = 'dead';
