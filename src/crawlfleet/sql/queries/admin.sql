-- Named queries of the Admin service; see jobs.sql for the format.

-- name: job_count_fold
-- Folds the pending count deltas into job_counts. Coordinators may run it concurrently: rows one
-- of them deleted are skipped by the others.
WITH folded AS (
    DELETE FROM job_count_deltas RETURNING kind, state, delta
)
INSERT INTO job_counts AS c (kind, state, count)
SELECT kind, state, sum(delta) FROM folded GROUP BY kind, state
ON CONFLICT (kind, state) DO UPDATE SET count = c.count + excluded.count;

-- name: job_count_by_kind_state
-- Exact counts: folded counts plus the deltas not folded yet.
SELECT kind, state, sum(n)::bigint AS jobs
FROM (SELECT kind, state, count AS n FROM job_counts
      UNION ALL
      SELECT kind, state, delta FROM job_count_deltas) AS parts
GROUP BY kind, state
HAVING sum(n) <> 0;

-- name: queue_health
-- Leases count as expired (stuck) only once expired longer than the grace: the reaper ends them
-- within its interval, and a lease a second past its expiry is not yet a sign of trouble.
-- Due jobs are exact, counted from the cheaper side: the kept queued count (job_counts plus the
-- deltas not folded, which change in the same statements as the jobs, so they agree with the
-- jobs in any snapshot) less the queued jobs not yet due, when those are fewer than $4 (one range
-- of jobs_queued_run_at, stopped at $4); else the due ones themselves. A backlog of millions of
-- due jobs then costs a handful of rows, not a walk of its index entries.
-- Params: expiring within (ms), stuck grace (ms), now, bound on jobs not yet due.
WITH clock AS (
    SELECT coalesce($3::timestamptz, now()) AS now
), queued AS (
    SELECT coalesce(sum(n), 0)::bigint AS n
    FROM (SELECT count AS n FROM job_counts WHERE state = 'queued'
          UNION ALL
          SELECT delta FROM job_count_deltas WHERE state = 'queued') AS parts
), not_due AS (
    SELECT count(*) AS n
    FROM (SELECT 1 FROM jobs, clock WHERE state = 'queued' AND run_at > clock.now LIMIT $4::integer) AS later
)
SELECT
    CASE WHEN not_due.n < $4::integer THEN queued.n - not_due.n
         ELSE (SELECT count(*) FROM jobs WHERE state = 'queued' AND run_at <= clock.now) END AS due,
    (SELECT min(run_at) FROM jobs WHERE state = 'queued' AND run_at <= clock.now) AS oldest_due_run_at,
    (SELECT count(*) FROM jobs
      WHERE state = 'leased' AND lease_expires_at > clock.now
        AND lease_expires_at <= clock.now + $1::integer * interval '1 millisecond') AS expiring_soon,
    (SELECT count(*) FROM jobs
      WHERE state = 'leased' AND lease_expires_at <= clock.now - $2::integer * interval '1 millisecond') AS expired,
    clock.now AS now
FROM clock, queued, not_due;

-- name: queue_oldest_due
-- The run_at of the oldest due job, for the coordinator's gauge: one probe of jobs_queued_run_at,
-- where queue_health's exact count of due jobs reads the whole due backlog (a million index
-- entries every refresh, at a million due jobs). Params: now.
SELECT (SELECT min(run_at) FROM jobs
         WHERE state = 'queued' AND run_at <= coalesce($1::timestamptz, now())) AS oldest_due_run_at,
       coalesce($1::timestamptz, now()) AS now;

-- name: worker_list_seen
-- Workers seen since a time, with the leases each holds. Params: seen since.
SELECT w.id, w.host, w.version, w.kinds, w.first_seen_at, w.last_seen_at,
       coalesce(held.n, 0) AS in_flight, w.slots
FROM workers AS w
LEFT JOIN (SELECT leased_by, count(*) AS n FROM jobs WHERE state = 'leased' GROUP BY leased_by) AS held
       ON held.leased_by = w.id
WHERE w.last_seen_at >= $1
ORDER BY w.last_seen_at DESC
LIMIT 10000;

-- name: plan_each_call
-- For the rest of the transaction, every statement is planned for its own parameter values. The
-- ListJobs statements' optional filters (`$n IS NULL OR ...`) fold away only in such a custom
-- plan: the generic plan a prepared statement settles on after five runs cannot use the URL or
-- creation-time index and walks the history back from the newest job instead.
SELECT set_config('plan_cache_mode', 'force_custom_plan', true);

-- name: job_list_filtered
-- Newest first from a cursor; ListJobs without a state filter (with one: job_list_by_state).
-- Params: kind, url prefix, created after, created before, error type, before id (cursor), limit.
SELECT id, kind, state, spec, target_url, attempt, max_attempts, created_at, run_at, leased_at,
       lease_expires_at, leased_by, finished_at, last_error, cancel_requested
FROM jobs
WHERE ($1::text IS NULL OR kind = $1)
  AND ($2::text IS NULL OR target_url LIKE $2 || '%')
  AND ($3::timestamptz IS NULL OR created_at >= $3)
  AND ($4::timestamptz IS NULL OR created_at < $4)
  AND ($5::text IS NULL OR last_error LIKE $5 || ':%')
  AND id < $6
ORDER BY id DESC
LIMIT $7;

-- name: job_list_by_state
-- ListJobs filtered by state: newest first from a cursor, one walk per state asked for, in that
-- state's own id order, merged. Queued jobs walk jobs_queued_id, leased ones are few (in flight),
-- finished ones walk their state's range of jobs_finished (state, id): ordered by (state, id),
-- which the primary key cannot give, so no plan walks the primary key back over every newer job
-- of another state (a backlog newer than the history: the planner, seeing a state that is most
-- of the table, expects the next match at once) or sorts a whole state. A page costs its
-- rows and the rows the other filters skip, never the history of other states.
-- Params: states (not empty), kind, url prefix, created after, created before, error type, before
-- id (cursor), limit.
SELECT * FROM (
    (SELECT id, kind, state, spec, target_url, attempt, max_attempts, created_at, run_at, leased_at,
           lease_expires_at, leased_by, finished_at, last_error, cancel_requested
    FROM jobs
    WHERE 'queued' = ANY($1::job_state[]) AND state = 'queued' AND id < $7
      AND ($2::text IS NULL OR kind = $2) AND ($3::text IS NULL OR target_url LIKE $3 || '%')
      AND ($4::timestamptz IS NULL OR created_at >= $4) AND ($5::timestamptz IS NULL OR created_at < $5)
      AND ($6::text IS NULL OR last_error LIKE $6 || ':%')
    ORDER BY id DESC
    LIMIT $8)
    UNION ALL
    (SELECT id, kind, state, spec, target_url, attempt, max_attempts, created_at, run_at, leased_at,
           lease_expires_at, leased_by, finished_at, last_error, cancel_requested
    FROM jobs
    WHERE 'leased' = ANY($1::job_state[]) AND state = 'leased' AND id < $7
      AND ($2::text IS NULL OR kind = $2) AND ($3::text IS NULL OR target_url LIKE $3 || '%')
      AND ($4::timestamptz IS NULL OR created_at >= $4) AND ($5::timestamptz IS NULL OR created_at < $5)
      AND ($6::text IS NULL OR last_error LIKE $6 || ':%')
    ORDER BY id DESC
    LIMIT $8)
    UNION ALL
    (SELECT finished.*
    FROM unnest($1::job_state[]) AS asked(state)
    CROSS JOIN LATERAL (
        SELECT id, kind, state, spec, target_url, attempt, max_attempts, created_at, run_at, leased_at,
           lease_expires_at, leased_by, finished_at, last_error, cancel_requested
        FROM jobs
        -- = ANY of one state, not =: equality would make state a constant of the ordering,
        -- which the primary key would then satisfy.
        WHERE state = ANY(ARRAY[asked.state]) AND finished_at IS NOT NULL AND id < $7
          AND ($2::text IS NULL OR kind = $2) AND ($3::text IS NULL OR target_url LIKE $3 || '%')
      AND ($4::timestamptz IS NULL OR created_at >= $4) AND ($5::timestamptz IS NULL OR created_at < $5)
      AND ($6::text IS NULL OR last_error LIKE $6 || ':%')
        ORDER BY state DESC, id DESC
        LIMIT $8
    ) AS finished
    WHERE asked.state NOT IN ('queued', 'leased'))
) AS page
ORDER BY id DESC
LIMIT $8;

-- name: job_requeue_dead
-- Dead jobs back to queued now with a fresh attempt budget: the given ids ($1; NULL for any) that
-- match the filter, up to $8. A job whose dedupe key has a live job stays dead, and of several
-- dead jobs with one key (a URL that died twice) only the newest comes back. Params: ids, kind,
-- url prefix, created after, created before, error type, now, limit.
WITH chosen AS (
    SELECT j.id, j.dedupe_key
    FROM jobs AS j
    WHERE j.state = 'dead'
      AND ($1::bigint[] IS NULL OR j.id = ANY($1::bigint[]))
      AND ($2::text IS NULL OR j.kind = $2)
      AND ($3::text IS NULL OR j.target_url LIKE $3 || '%')
      AND ($4::timestamptz IS NULL OR j.created_at >= $4)
      AND ($5::timestamptz IS NULL OR j.created_at < $5)
      AND ($6::text IS NULL OR j.last_error LIKE $6 || ':%')
      AND (j.dedupe_key IS NULL OR NOT EXISTS (
              SELECT 1 FROM jobs AS live
              WHERE live.dedupe_key = j.dedupe_key AND live.state IN ('queued', 'leased')))
    ORDER BY j.id
    LIMIT $8
    FOR UPDATE SKIP LOCKED
), one_per_key AS (
    SELECT id FROM (
        SELECT id, row_number() OVER (PARTITION BY coalesce(dedupe_key, id::text) ORDER BY id DESC) AS nth
        FROM chosen
    ) AS ranked
    WHERE nth = 1
), requeued AS (
    UPDATE jobs AS j
    SET state = 'queued',
        attempt = 0,
        run_at = coalesce($7::timestamptz, now()),
        finished_at = NULL,
        lease_token = NULL,
        cancel_requested = false,
        -- Jobs that died before hosts existed get theirs (as migration 0007 computes it).
        host = coalesce(j.host, substring(j.target_url FROM '^[a-z][a-z0-9+.-]*://([^/?#]*)'))
    FROM one_per_key
    WHERE j.id = one_per_key.id
    RETURNING j.id, j.kind, j.host, j.run_at, j.priority
), counted AS (
    INSERT INTO job_count_deltas (kind, state, delta)
    SELECT kind, state, n
    FROM (SELECT kind, count(*) AS c FROM requeued GROUP BY kind) AS per_kind,
         LATERAL (VALUES ('dead'::job_state, -c), ('queued'::job_state, c)) AS moves(state, n)
), woken AS (
    SELECT crawlfleet_hosts_wake(array_agg(host), array_agg(run_at), array_agg(priority)) AS hosts
    FROM requeued WHERE host IS NOT NULL
)
SELECT id, pg_notify('crawlfleet_jobs', '') AS notified, (SELECT hosts FROM woken) AS hosts_woken FROM requeued;

-- name: job_purge_lock
-- Removals of finished jobs take turns across coordinators (until the transaction ends): the
-- orphan check of two concurrent ones could each see the other's page images still there and
-- leave an image nobody refers to. Waits (within the lock timeout): for PurgeJobs.
SELECT pg_advisory_xact_lock(hashtext('crawlfleet.job_purge'));

-- name: job_purge_try_lock
-- As job_purge_lock, but does not wait: retention skips its turn when another coordinator is at it.
SELECT pg_try_advisory_xact_lock(hashtext('crawlfleet.job_purge')) AS locked;

-- name: job_purge_finished
-- Deletes up to $3 jobs in the given terminal states that finished before $2, with their attempts
-- (no foreign key: migration 0025), and their pages and page images (by cascade); then the images
-- and thumbnails no page refers to any more.
-- In no particular order: every row past the bound goes, so the batch is the first $3 entries of
-- each state's range of jobs_finished (state, id) up to the first job created after the bound
-- (a job finishes after it is created), never a sort of all expired rows (which ordering by
-- finished_at cost per batch). Returns the deleted jobs per state.
-- Params: states, finished before, limit.
WITH doomed AS (
    SELECT id FROM jobs
    WHERE state = ANY($1::job_state[]) AND finished_at IS NOT NULL AND finished_at < $2
      -- Below the first job created at or after the bound (one probe of jobs_created_at; none: no
      -- bound). Of two concurrent enqueues the later-stamped may hold the lower ids: the other's
      -- jobs then wait for a later pass.
      AND id < coalesce((SELECT c.id FROM jobs AS c WHERE c.created_at >= $2 ORDER BY c.created_at LIMIT 1),
                        9223372036854775807)
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), their_images AS (
    SELECT DISTINCT image_sha256 AS sha256 FROM page_images
    WHERE job_id IN (SELECT id FROM doomed) AND image_sha256 IS NOT NULL
), gone AS (
    -- = ANY(ARRAY(...)) keeps the delete on the primary key in every plan (IN could hash-join
    -- against a scan of the whole table).
    DELETE FROM jobs WHERE id = ANY(ARRAY(SELECT id FROM doomed)) RETURNING id, kind, state
), their_attempts AS (
    DELETE FROM job_attempts WHERE job_id = ANY(ARRAY(SELECT id FROM gone))
), per_state AS (
    SELECT kind, state, count(*) AS n FROM gone GROUP BY kind, state
), counted AS (
    INSERT INTO job_count_deltas (kind, state, delta)
    SELECT kind, state, -n FROM per_state
)
SELECT (SELECT count(*) FROM gone) AS deleted_jobs,
       (SELECT array_agg(sha256) FROM their_images) AS image_candidates,
       ARRAY(SELECT state::text FROM per_state GROUP BY state ORDER BY state) AS deleted_states,
       ARRAY(SELECT sum(n)::bigint FROM per_state GROUP BY state ORDER BY state) AS deleted_counts;

-- name: image_lock_for_removal
-- Locks the given images FOR UPDATE (hash order, as Complete locks them), before
-- image_delete_unreferenced checks them in a statement of its own: that check then sees every page
-- image of a Complete that held one of them (FOR KEY SHARE, image_lock_stored) until it committed,
-- and no Complete can start referring to them until this transaction ends. Checked in the same
-- statement as the lock, a Complete committed while the lock waited was invisible to the check,
-- and the delete failed on the foreign key (or removed a thumbnail a page had just stored).
SELECT sha256 FROM images WHERE sha256 = ANY($1::text[]) ORDER BY sha256 FOR UPDATE;

-- name: image_delete_unreferenced
-- Of the given images, deletes those no page image refers to, with their thumbnails. Run after
-- image_lock_for_removal, in the same transaction.
WITH orphans AS (
    SELECT i.sha256 FROM images AS i
    WHERE i.sha256 = ANY($1::text[])
      AND NOT EXISTS (SELECT 1 FROM page_images AS pi WHERE pi.image_sha256 = i.sha256)
    FOR UPDATE
), thumbs AS (
    DELETE FROM thumbnails WHERE image_sha256 IN (SELECT sha256 FROM orphans)
)
DELETE FROM images WHERE sha256 IN (SELECT sha256 FROM orphans) RETURNING sha256;

-- name: job_count_lock
-- Holds off every writer's count deltas until the transaction ends (they wait, then go on).
LOCK TABLE job_count_deltas IN SHARE ROW EXCLUSIVE MODE;

-- name: job_count_clear
-- Drops the kept counts, before job_count_rebuild; run under job_count_lock.
WITH cleared_deltas AS (
    DELETE FROM job_count_deltas
)
DELETE FROM job_counts;

-- name: job_count_rebuild
-- Recounts the jobs table into job_counts: the repair after jobs were written behind the queue's
-- back. Run under job_count_lock, after job_count_clear.
INSERT INTO job_counts (kind, state, count)
SELECT kind, state, count(*) FROM jobs GROUP BY kind, state;

-- name: queue_activity_by_minute
-- Attempts that ended in [$1, $2), by the minute they ended in: how many succeeded, failed (a
-- retry, dead or non-retryable) or expired, and how long their jobs waited for the lease (from
-- the job's run_at to the lease's start). Only a job's latest attempt knows its wait (a retry
-- moves run_at), so the wait is taken from those; a job requeued from dead is left out. Bounded
-- by the range through job_attempts_finished_at. Params: from, to.
SELECT date_trunc('minute', a.finished_at) AS minute,
       count(*) FILTER (WHERE a.outcome = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE a.outcome = 'failed') AS failed,
       count(*) FILTER (WHERE a.outcome = 'expired') AS expired,
       avg(extract(epoch FROM a.started_at - j.run_at) * 1000)
           FILTER (WHERE a.attempt = j.attempt AND a.started_at >= j.run_at)::float8 AS wait_avg_ms,
       max(extract(epoch FROM a.started_at - j.run_at) * 1000)
           FILTER (WHERE a.attempt = j.attempt AND a.started_at >= j.run_at)::float8 AS wait_max_ms
FROM job_attempts AS a
JOIN jobs AS j ON j.id = a.job_id
WHERE a.finished_at >= $1::timestamptz AND a.finished_at < $2::timestamptz
GROUP BY 1
ORDER BY 1;
