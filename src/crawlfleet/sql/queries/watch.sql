-- Named queries of WatchJobs streams; see jobs.sql for the format. Jobs that reach a terminal
-- state send `NOTIFY crawlfleet_jobs_finished` while a coordinator is registered in job_watchers
-- (see jobs.sql); a stream then re-checks the jobs it still waits for with job_watch_finished_many.

-- name: job_watch_finished_many
-- Of the given ids, those whose job is terminal, and those that match no job (state NULL): one
-- primary-key probe per id. Params: job ids.
SELECT w.id, j.state::text AS state, j.attempt, j.finished_at, j.last_error
FROM unnest($1::bigint[]) AS w(id)
LEFT JOIN jobs AS j ON j.id = w.id
WHERE j.id IS NULL OR j.state IN ('succeeded', 'dead', 'cancelled');

-- name: job_list_unfinished_ids
-- Ids of the queued and leased jobs, up to a limit; each branch reads its state's partial index
-- (finished rows are in neither). Params: limit.
SELECT id FROM (
    SELECT id FROM jobs WHERE state = 'queued'
    UNION ALL
    SELECT id FROM jobs WHERE state = 'leased'
) AS unfinished
LIMIT $1;

-- name: job_watcher_register
-- Registers (or refreshes) a coordinator with open streams until now + TTL, and drops the
-- registrations that expired (coordinators that went away without removing theirs).
-- Params: coordinator id, TTL in ms.
WITH expired AS (
    DELETE FROM job_watchers WHERE expires_at < now() AND coordinator_id <> $1
)
INSERT INTO job_watchers (coordinator_id, expires_at)
VALUES ($1, now() + $2::integer * interval '1 millisecond')
ON CONFLICT (coordinator_id) DO UPDATE SET expires_at = excluded.expires_at;

-- name: job_watcher_unregister
-- The coordinator's last stream closed. Params: coordinator id.
DELETE FROM job_watchers WHERE coordinator_id = $1;
