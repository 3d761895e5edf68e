-- Coordinators with WatchJobs streams open. Statements that finish jobs send
-- NOTIFY crawlfleet_jobs_finished only while some registration here has not expired: a NOTIFY
-- makes commits take turns (a database-wide lock held through the commit), which cost single-job
-- completes up to 60% of their throughput when measured (bench/notify.py), for notifies nobody
-- listened to.
-- A coordinator registers when its first stream opens, refreshes the registration while streams
-- stay open, and removes it when the last one closes; a crashed coordinator's registration expires.
CREATE TABLE job_watchers (
    coordinator_id  uuid        PRIMARY KEY,
    expires_at      timestamptz NOT NULL
);
