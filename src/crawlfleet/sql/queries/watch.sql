-- Named queries of WatchJobs streams; see jobs.sql for the format. Jobs that reach a terminal
-- state send `NOTIFY crawlfleet_jobs_finished` while a coordinator is registered in job_watchers
-- (see jobs.sql); a stream then re-checks the jobs it still waits for with job_watch_finished_many.

-- name: job_watch_finished_many
-- Of the given ids, the jobs that are terminal and, when $2, the ids that match no job (state
-- NULL). Both read the primary key for the given ids only (a join against unnest would let the
-- planner hash the whole table). A job of another owner than $3 (NULL: any owner) is no job.
-- Params: job ids, look for missing ids, owner.
SELECT id, state::text AS state, attempt, finished_at, last_error
FROM jobs
WHERE id = ANY($1::bigint[]) AND state IN ('succeeded', 'dead', 'cancelled', 'skipped')
  AND ($3::text IS NULL OR owner = $3::text)
UNION ALL
SELECT missing.id, NULL, NULL, NULL, NULL
FROM (SELECT unnest($1::bigint[]) AS id
      EXCEPT
      SELECT id FROM jobs WHERE id = ANY($1::bigint[]) AND ($3::text IS NULL OR owner = $3::text)) AS missing
WHERE $2::boolean;

-- name: job_list_unfinished_ids
-- Ids of the queued and leased jobs, up to a limit, as one array (a row per id would cost far more
-- memory at a million); each branch reads its state's partial index (finished rows are in
-- neither). Params: limit, owner (NULL: any owner's).
SELECT array_agg(id) AS ids FROM (
    SELECT id FROM jobs WHERE state = 'queued' AND ($2::text IS NULL OR owner = $2::text)
    UNION ALL
    SELECT id FROM jobs WHERE state = 'leased' AND ($2::text IS NULL OR owner = $2::text)
    LIMIT $1
) AS unfinished;

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
