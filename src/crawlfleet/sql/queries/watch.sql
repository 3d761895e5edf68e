-- Named queries of WatchJobs streams; see jobs.sql for the format. Jobs that reach a terminal
-- state send `NOTIFY crawlfleet_jobs_finished` (see jobs.sql); a stream then re-checks the jobs it
-- still waits for with job_watch_finished_many.

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
