-- Queued jobs in id order: ListJobs filtered by queued pages newest first by walking it back from
-- the cursor (job_list_by_state). Without it the planner, seeing queued jobs as a sliver of a
-- table of history, sorted every queued job for each page (26 ms at 12,000 queued behind ten
-- million finished, against 0.4 ms with no history), or walked the primary key over every newer
-- job. Partial: an entry per job while it is queued, written when a job is enqueued or queued
-- again (retry, reap, requeue); a claim or a complete writes none (their new row versions are
-- not queued).
CREATE INDEX jobs_queued_id ON jobs (id) WHERE state = 'queued';
