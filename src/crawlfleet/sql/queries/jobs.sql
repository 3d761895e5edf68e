-- Named queries on jobs and job_attempts. Each query starts with a `-- name:` header and is
-- loaded by coordinator/storage/sql.py; only the stores of coordinator/storage run them.
-- A nullable `now` parameter lets tests control time: coalesce(<now>, now()).
-- Statements that make jobs due send NOTIFY crawlfleet_jobs (wakes Lease long-polls; the payload is
-- the number of due jobs when the statement knows it, and wakes that many; empty wakes all); those that
-- make jobs terminal send NOTIFY crawlfleet_jobs_finished (wakes WatchJobs streams), but only while
-- a coordinator has streams open (job_watchers): a NOTIFY makes commits take turns. Identical
-- notifies of one transaction are delivered once.

-- name: job_enqueue_many
-- Inserts a batch; a row whose dedupe_key matches a live job inserts nothing and answers that
-- job (created = false, with its spec when that is not the one given). Ids come from the sequence
-- up front so each input row maps to its id. One row comes back: per input row, in order, its id
-- (NULL when the conflicting live job committed after this statement's snapshot: the caller looks
-- it up again), whether it was created, and the live job's spec when it differs; arrays decode in
-- one piece where a row per job would cost the coordinator a record each.
-- $13: the owner of every job (the caller's principal; NULL without auth). Dedupe keys of owned
-- jobs carry the owner (api/validation.py): owners never share a job.
-- The hosts of the new jobs are made ready for them (crawlfleet_hosts_wake), when there are any.
WITH input AS (
    -- Each row as it is stored (the columns in the inserts' order), and its place in the batch.
    SELECT nextval('jobs_id_seq'::regclass) AS id, t.kind, t.priority, t.spec, t.target_url, t.dedupe_key,
           coalesce(t.run_at, $12::timestamptz, now()) AS run_at, coalesce($12::timestamptz, now()) AS created_at,
           t.max_attempts, t.retry_initial_ms, t.retry_multiplier, t.retry_max_ms, $13::text AS owner, t.host, t.ord
    FROM unnest($1::text[], $2::smallint[], $3::bytea[], $4::text[], $5::text[], $6::timestamptz[],
                $7::integer[], $8::integer[], $9::real[], $10::integer[], $11::text[])
         WITH ORDINALITY AS t(kind, priority, spec, target_url, dedupe_key, run_at,
                              max_attempts, retry_initial_ms, retry_multiplier, retry_max_ms, host, ord)
), keyed AS (
    -- Rows with a dedupe key may meet a live twin: ON CONFLICT decides. Rows without one never
    -- conflict, and go in below without ON CONFLICT's speculative insertion (a lock, an extra
    -- WAL record and a confirmation per row).
    INSERT INTO jobs (id, kind, priority, spec, target_url, dedupe_key, run_at, created_at,
                      max_attempts, retry_initial_ms, retry_multiplier, retry_max_ms, owner, host)
    OVERRIDING SYSTEM VALUE
    SELECT id, kind, priority, spec, target_url, dedupe_key, run_at, created_at,
           max_attempts, retry_initial_ms, retry_multiplier, retry_max_ms, owner, host
    FROM input WHERE dedupe_key IS NOT NULL ORDER BY ord
    ON CONFLICT (dedupe_key) WHERE state IN ('queued', 'leased') AND dedupe_key IS NOT NULL DO NOTHING
    RETURNING id, run_at, kind, host, priority
), unkeyed AS (
    INSERT INTO jobs (id, kind, priority, spec, target_url, dedupe_key, run_at, created_at,
                      max_attempts, retry_initial_ms, retry_multiplier, retry_max_ms, owner, host)
    OVERRIDING SYSTEM VALUE
    SELECT id, kind, priority, spec, target_url, dedupe_key, run_at, created_at,
           max_attempts, retry_initial_ms, retry_multiplier, retry_max_ms, owner, host
    FROM input WHERE dedupe_key IS NULL ORDER BY ord
    RETURNING id, run_at, kind, host, priority
), inserted AS (
    SELECT * FROM keyed UNION ALL SELECT * FROM unkeyed
), counted AS (
    INSERT INTO job_count_deltas (kind, state, delta)
    SELECT kind, 'queued', count(*) FROM inserted GROUP BY kind
), woken AS (
    -- HAVING: a batch without hosts does not call the function at all.
    SELECT crawlfleet_hosts_wake(array_agg(host), array_agg(run_at), array_agg(priority)) AS hosts
    FROM inserted WHERE host IS NOT NULL HAVING count(*) > 0
), answered AS (
    SELECT input.ord,
           coalesce(inserted.id, live.id) AS id,
           inserted.id IS NOT NULL AS created,
           -- The live job's spec when it differs from the one given, so the caller can say whether
           -- its options (render mode, priority, …) were not applied; NULL for created jobs and
           -- equal specs.
           CASE WHEN live.spec IS DISTINCT FROM input.spec THEN live.spec END AS live_spec
    FROM input
    LEFT JOIN inserted ON inserted.id = input.id
    -- Only a row that inserted nothing looks for its live twin: one probe of jobs_dedupe_key_live
    -- each, never a pass over every live job (LIMIT keeps the planner from flattening the probe
    -- into a join with all of them; the index is unique, so it drops nothing).
    LEFT JOIN LATERAL (SELECT j.id, j.spec FROM jobs AS j
                       WHERE inserted.id IS NULL AND j.dedupe_key = input.dedupe_key
                         AND j.state IN ('queued', 'leased') AND j.dedupe_key IS NOT NULL
                       LIMIT 1) AS live ON true
)
SELECT array_agg(id ORDER BY ord) AS ids,
       array_agg(created ORDER BY ord) AS created,
       array_agg(live_spec ORDER BY ord) AS live_specs,
       (SELECT count(pg_notify('crawlfleet_jobs', due.jobs::text))
          FROM (SELECT count(*) AS jobs FROM inserted
                WHERE inserted.run_at <= coalesce($12::timestamptz, now()) HAVING count(*) > 0) AS due) AS notified,
       (SELECT hosts FROM woken) AS hosts_woken
FROM answered;

-- name: job_get_live_by_dedupe_keys
-- The live job of each dedupe key, for enqueue rows that conflicted with a concurrent insert.
SELECT dedupe_key, id
FROM jobs
WHERE dedupe_key = ANY($1::text[]) AND state IN ('queued', 'leased');

-- name: job_lease_available
-- Claims up to $2 due jobs for a worker: host-bound jobs within their hosts' limits (fleet-wide:
-- concurrency, delay between lease starts, pauses, robots.txt), then hostless ones in lease
-- order; at most one lease per target URL. See crawlfleet_claim (migration 0007).
-- Params: worker_id, max_jobs, kinds (empty = any), lease length in ms, now, the caller's
-- principal (NULL without auth; the lease is bound to it), the fleet's default host
-- concurrency, delay in ms and robots.txt rule, how often a saturated host is looked at again (ms).
-- A claim that leased jobs commits without waiting for its WAL to reach disk (synchronous_commit
-- off for this transaction only): one lost in a crash is safe, as its lease token is then unknown,
-- so the worker's Complete is refused and the job is leased again; and every later commit that
-- depends on it (a Complete) flushes the WAL up to itself, the claim included.
SELECT id, kind, spec, attempt, max_attempts, lease_token, lease_expires_at, host, fetch_robots, robots_version
FROM crawlfleet_claim($1::text, $2::integer, $3::text[], $4::integer, $5::timestamptz, $6::text,
                      $7::integer, $8::integer, $9::boolean, $10::integer)
WHERE set_config('synchronous_commit', 'off', true) = 'off';

-- name: host_next_ready
-- When the next host with queued work becomes ready (NULL: none waits): an idle Lease sleeps
-- until then rather than polling. A host paused until resumed ('infinity') is never ready by
-- itself: the resume wakes the Lease.
SELECT min(ready_at) AS ready_at FROM hosts WHERE ready_at < 'infinity';

-- name: job_heartbeat_many
-- Extends leases still held under the same token; a lease whose job was cancelled ends here
-- (the job becomes cancelled and the answer says so). Rows another session has locked are
-- skipped, not waited for (one foreign lock must not stall a worker's every lease): they come
-- back as 'leased' without an expiry, and so do leases whose Complete commits meanwhile. A lease
-- whose job succeeded under the same token comes back 'succeeded'. Leases not returned are lost.
-- A lease bound to another principal is lost ($5: the caller's; NULL without auth skips the check).
-- Params: job ids, lease tokens, lease length in ms, now, principal.
WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::uuid[]) AS t(job_id, lease_token)
), held AS (
    SELECT j.id, j.kind, j.attempt, j.lease_token, j.leased_by, j.leased_at, j.target_url, j.cancel_requested
    FROM jobs AS j JOIN input ON j.id = input.job_id AND j.lease_token = input.lease_token
    WHERE j.state = 'leased'
      AND ($5::text IS NULL OR j.lease_principal = $5::text)
    ORDER BY j.id
    FOR UPDATE OF j SKIP LOCKED
), updated AS (
    UPDATE jobs AS j
    SET state = CASE WHEN held.cancel_requested THEN 'cancelled'::job_state ELSE 'leased' END,
        lease_expires_at = CASE WHEN held.cancel_requested THEN NULL
            ELSE coalesce($4::timestamptz, now()) + $3::integer * interval '1 millisecond' END,
        finished_at = CASE WHEN held.cancel_requested THEN coalesce($4::timestamptz, now()) END
    FROM held
    WHERE j.id = held.id
    RETURNING j.id, j.state, j.lease_expires_at
), history AS (
    UPDATE job_attempts AS a
    SET finished_at = greatest(a.started_at, coalesce($4::timestamptz, now())),
        outcome = 'cancelled', error_type = 'cancelled', error_message = 'cancelled by an operator'
    FROM held
    WHERE held.cancel_requested AND a.job_id = held.id AND a.lease_token = held.lease_token
), counted AS (
    INSERT INTO job_count_deltas (kind, state, delta)
    SELECT kind, state, n
    FROM (SELECT kind, count(*) AS c FROM held WHERE cancel_requested GROUP BY kind) AS per_kind,
         LATERAL (VALUES ('leased'::job_state, -c), ('cancelled'::job_state, c)) AS moves(state, n)
)
SELECT id, state, lease_expires_at,
       CASE WHEN state = 'cancelled' AND EXISTS (SELECT 1 FROM job_watchers WHERE expires_at > now())
            THEN pg_notify('crawlfleet_jobs_finished', '') END AS finished_notified
FROM updated
UNION ALL
-- The rest as this statement's snapshot saw them (only leases not settled above are looked up).
SELECT j.id, j.state, NULL, NULL
FROM input JOIN jobs AS j ON j.id = input.job_id AND j.lease_token = input.lease_token
WHERE j.state IN ('leased', 'succeeded')
  AND ($5::text IS NULL OR j.lease_principal = $5::text)
  AND NOT EXISTS (SELECT 1 FROM updated WHERE updated.id = input.job_id);

-- name: job_complete_if_leased_many
-- Completes the jobs, all or nothing: only if every one is still leased under its token does it
-- mark them succeeded and close their attempts. If none is, it changes nothing and returns no
-- rows; if some are and some are not, it fails with crawlfleet_lease_not_held_v1's error, which
-- undoes the whole statement. Either way the caller then finds out which were replays and which
-- were lost. The UPDATE locks each row as it changes it: no separate locking pass (a row lock
-- written to the WAL for every job). A lease bound to another principal counts as not held ($5:
-- the caller's; NULL without auth skips the check).
-- Params: job ids, lease tokens, results, now, principal.
WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::bytea[]) AS t(job_id, lease_token, result)
), held AS MATERIALIZED (
    -- The leases of the batch held as this statement's snapshot sees them, one probe of the
    -- primary key per job: the lateral subquery (kept apart by OFFSET 0) is run for each input
    -- row, so no statistics can turn this into a join that compares every input row with every
    -- lease. "leased" is written as a range, as in jobs_host_leased's predicate: no partial index
    -- can then answer it, and the leases in flight (jobs_lease_expiry) are never walked per job.
    SELECT found.row_id, found.id, found.lease_token, input.result
    FROM input
    CROSS JOIN LATERAL (
        SELECT j.ctid AS row_id, j.id, j.lease_token
        FROM jobs AS j
        WHERE j.id = input.job_id AND j.lease_token = input.lease_token
          AND j.state >= 'leased' AND j.state <= 'leased'
          AND ($5::text IS NULL OR j.lease_principal = $5::text)
        OFFSET 0
    ) AS found
), completed AS (
    -- Each row found above, by its address. The row lock is taken here; a row changed since the
    -- snapshot (its lease reaped, say) is checked again on its latest version, fails the
    -- conditions on id, token and state, and is left out: all_held then undoes the batch.
    UPDATE jobs AS j
    SET state = 'succeeded',
        finished_at = coalesce($4::timestamptz, now()),
        lease_expires_at = NULL,
        result = held.result
    FROM held
    WHERE j.ctid = held.row_id
      AND j.id = held.id AND j.lease_token = held.lease_token AND j.state >= 'leased' AND j.state <= 'leased'
    RETURNING j.id, j.lease_token, j.kind, j.host, j.crawl_id, j.depth
), all_held AS (
    SELECT CASE WHEN (SELECT count(*) FROM completed) = cardinality($1::bigint[]) THEN true
                ELSE crawlfleet_lease_not_held_v1() END AS ok
), counted AS (
    INSERT INTO job_count_deltas (kind, state, delta)
    SELECT kind, state, n
    FROM (SELECT kind, count(*) AS c FROM completed GROUP BY kind) AS per_kind,
         LATERAL (VALUES ('leased'::job_state, -c), ('succeeded'::job_state, c)) AS moves(state, n)
), history AS (
    UPDATE job_attempts AS a
    SET finished_at = greatest(a.started_at, coalesce($4::timestamptz, now())), outcome = 'succeeded'
    FROM completed
    WHERE a.job_id = completed.id AND a.lease_token = completed.lease_token
), host_rows AS (
    -- Only hosts a success changes are written (most completes touch no host row): one at its
    -- concurrency limit now has a free slot; a failing one has recovered (the breaker closes).
    SELECT h.host FROM hosts AS h
    WHERE h.host IN (SELECT completed.host FROM completed)
      AND (h.saturated OR h.error_streak > 0 OR h.paused_until <= coalesce($4::timestamptz, now()))
    ORDER BY h.host
    FOR UPDATE
), hosts_freed AS (
    UPDATE hosts AS h
    SET saturated = false,
        error_streak = 0,
        paused_until = CASE WHEN h.paused_until > coalesce($4::timestamptz, now()) THEN h.paused_until END,
        pause_reason = CASE WHEN h.paused_until > coalesce($4::timestamptz, now()) THEN h.pause_reason END,
        ready_at = CASE WHEN h.ready_at IS NOT NULL THEN
            greatest(least(h.ready_at, coalesce($4::timestamptz, now())), h.next_start_at, h.robots_fetching_until,
                     CASE WHEN h.paused_until > coalesce($4::timestamptz, now()) THEN h.paused_until END) END
    FROM host_rows
    WHERE h.host = host_rows.host
    RETURNING h.ready_at
)
SELECT id,
       (SELECT count(pg_notify('crawlfleet_jobs_finished', ''))
          FROM (SELECT 1 FROM completed LIMIT 1) AS any_completed
         WHERE EXISTS (SELECT 1 FROM job_watchers WHERE expires_at > now())) AS finished_notified,
       -- Wakes a waiting Lease per host that may lease again now.
       (SELECT count(pg_notify('crawlfleet_jobs', ready.hosts::text))
          FROM (SELECT count(*) AS hosts FROM hosts_freed
                WHERE hosts_freed.ready_at <= coalesce($4::timestamptz, now()) HAVING count(*) > 0) AS ready)
           AS hosts_notified,
       crawl_id, depth
FROM completed
WHERE (SELECT ok FROM all_held);

-- name: host_adapt_delay
-- Adaptive delay (AutoThrottle's rule): each host's delay moves halfway towards its latest
-- response time divided by the concurrency it should sustain, and rises at once when the
-- server slows down; at most $4 ms. Hosts another session holds are skipped: a sample lost
-- costs nothing to a smoothed figure, a wait would cost a Complete.
-- Params: job ids, their response times in ms, target concurrency, the longest delay in ms.
WITH samples AS (
    SELECT j.host, avg(t.latency_ms) / $3::float8 AS target_ms
    FROM unnest($1::bigint[], $2::float8[]) AS t(job_id, latency_ms)
    JOIN jobs AS j ON j.id = t.job_id
    WHERE j.host IS NOT NULL
    GROUP BY j.host
), free AS (
    SELECT h.host FROM hosts AS h
    WHERE h.host IN (SELECT samples.host FROM samples)
    ORDER BY h.host
    FOR UPDATE SKIP LOCKED
)
UPDATE hosts AS h
SET adaptive_delay_ms = round(least($4::float8,
        greatest(samples.target_ms, (coalesce(h.adaptive_delay_ms, 0) + samples.target_ms) / 2)))::integer
FROM samples, free
WHERE h.host = samples.host AND free.host = samples.host;

-- name: job_get_fencing_many
-- State, last lease token, its principal and result of jobs, to tell a replayed Complete from a
-- lost lease.
SELECT id, state, lease_token, lease_principal, result FROM jobs WHERE id = ANY($1::bigint[]);

-- name: job_fail_if_leased
-- Ends a leased attempt as failed (queued again with backoff, or dead), skipped (not to be run:
-- robots.txt disallows its URL; terminal, not dead) or released (queued in its old place, attempt
-- not charged). A cancel asked meanwhile wins over all three: the job is cancelled.
-- Backoff is full jitter: uniform in [0, min(max, initial * mult^(n-1))], or the worker's delay
-- when given. A lease bound to another principal is not held ($9: the caller's; NULL without auth
-- skips the check). Params: job id, lease token, error type, error message, retryable, retry delay
-- ms (nullable), release, now, principal; then the host's side: the failure's host class
-- ('429', '5xx', 'error'; NULL: not the host's fault), a pause the server asked for in ms
-- (Retry-After; NULL: none), the breaker's failures in a row, its first and longest pause in ms;
-- last, whether the failure skips the job rather than failing it.
-- A host failure adds to the host's streak; at the breaker's count the host pauses, for twice as
-- long at each further failure in a row. Either way the host may lease again (its job queued
-- again, or its slot free).
WITH old AS (
    SELECT j.id, j.attempt, j.lease_token, j.leased_by, j.leased_at, j.target_url,
           CASE WHEN j.cancel_requested THEN 'cancelled'::job_state
                WHEN $7::boolean THEN 'queued'::job_state
                WHEN $15::boolean THEN 'skipped'::job_state
                WHEN $5::boolean AND j.attempt < j.max_attempts THEN 'queued'::job_state
                ELSE 'dead'::job_state END AS next_state,
           CASE WHEN $7::boolean THEN 0::float8
                WHEN $6::float8 IS NOT NULL THEN $6::float8
                ELSE random() * least(j.retry_max_ms::float8,
                                      j.retry_initial_ms * power(j.retry_multiplier::float8, j.attempt - 1))
           END AS delay_ms
    FROM jobs AS j
    WHERE j.id = $1 AND j.lease_token = $2::uuid AND j.state = 'leased'
      AND ($9::text IS NULL OR j.lease_principal = $9::text)
    FOR UPDATE
), failed AS (
    UPDATE jobs AS j
    SET state = old.next_state,
        attempt = CASE WHEN $7::boolean THEN j.attempt - 1 ELSE j.attempt END,
        -- A release keeps the job's place in the order (its run_at had come when it was leased).
        run_at = CASE WHEN old.next_state <> 'queued' THEN j.run_at
                      WHEN $7::boolean THEN least(j.run_at, coalesce($8::timestamptz, now()))
                      ELSE coalesce($8::timestamptz, now()) + old.delay_ms * interval '1 millisecond' END,
        lease_token = CASE WHEN old.next_state = 'queued' THEN NULL ELSE j.lease_token END,
        lease_expires_at = NULL,
        finished_at = CASE WHEN old.next_state <> 'queued' THEN coalesce($8::timestamptz, now()) END,
        last_error = CASE WHEN $7::boolean THEN j.last_error ELSE $3 || ': ' || $4 END
    FROM old
    WHERE j.id = old.id
    RETURNING j.id, j.kind, j.state, j.run_at, j.host, j.priority, old.delay_ms
), counted AS (
    INSERT INTO job_count_deltas (kind, state, delta)
    SELECT kind, 'leased', -1 FROM failed
    UNION ALL
    SELECT kind, state, 1 FROM failed
), history AS (
    UPDATE job_attempts AS a
    SET finished_at = greatest(a.started_at, coalesce($8::timestamptz, now())),
        outcome = CASE WHEN $7::boolean THEN 'released' WHEN old.next_state = 'skipped' THEN 'skipped'
                       ELSE 'failed' END,
        error_type = $3, error_message = $4
    FROM old
    WHERE a.job_id = old.id AND a.lease_token = old.lease_token
), host_moved AS (
    -- Computed from the host row as locked (not as this statement's snapshot saw it), so
    -- concurrent failures of one host add up.
    UPDATE hosts AS h
    SET error_streak = h.error_streak + ($10::text IS NOT NULL)::integer,
        window_started_at = CASE WHEN h.window_started_at > p.now - interval '1 hour' THEN h.window_started_at
                                 ELSE p.now END,
        window_429 = CASE WHEN h.window_started_at > p.now - interval '1 hour' THEN h.window_429 ELSE 0 END
                     + ($10::text IS NOT DISTINCT FROM '429')::integer,
        window_5xx = CASE WHEN h.window_started_at > p.now - interval '1 hour' THEN h.window_5xx ELSE 0 END
                     + ($10::text IS NOT DISTINCT FROM '5xx')::integer,
        window_errors = CASE WHEN h.window_started_at > p.now - interval '1 hour' THEN h.window_errors ELSE 0 END
                        + ($10::text IS NOT DISTINCT FROM 'error')::integer,
        paused_until = crawlfleet_paused_until(h.paused_until, p.now,
                           crawlfleet_host_pause_ms(h.error_streak, $10::text, $11::float8, $12, $13, $14)),
        pause_reason = CASE
            WHEN coalesce(crawlfleet_host_pause_ms(h.error_streak, $10::text, $11::float8, $12, $13, $14), 0) <= 0
                THEN h.pause_reason
            WHEN $11::float8 > 0 THEN 'retry_after: the server asked to wait (' || $3 || ')'
            ELSE 'circuit_breaker: ' || h.error_streak + 1 || ' failures in a row, the last ' || $3 END,
        saturated = false,
        -- A released lease may have been the one fetching robots.txt (a worker shutting down):
        -- the host need not wait for that fetch any more; the next claim starts another.
        robots_fetching_until = CASE WHEN $7::boolean THEN NULL ELSE h.robots_fetching_until END,
        -- Its job queued again, or a slot free: the host may lease again, once its delay and any
        -- pause are over; at once if its queued work waited for that slot (it was saturated),
        -- whenever the failed job itself is retried.
        ready_at = CASE WHEN p.state = 'queued' OR h.ready_at IS NOT NULL THEN
            greatest(least(coalesce(h.ready_at, 'infinity'),
                           CASE WHEN p.state = 'queued' AND NOT h.saturated THEN p.run_at ELSE p.now END),
                     h.next_start_at, CASE WHEN $7::boolean THEN NULL ELSE h.robots_fetching_until END,
                     crawlfleet_paused_until(h.paused_until, p.now,
                         crawlfleet_host_pause_ms(h.error_streak, $10::text, $11::float8, $12, $13, $14)))
            END,
        top_priority = CASE WHEN p.state = 'queued' THEN greatest(h.top_priority, p.priority) ELSE h.top_priority END
    FROM (SELECT failed.host, failed.state, failed.run_at, failed.priority,
                 coalesce($8::timestamptz, now()) AS now,
                 (SELECT s.saturated FROM hosts AS s WHERE s.host = failed.host) AS was_saturated
          FROM failed) AS p
    WHERE h.host = p.host
    RETURNING p.was_saturated AND h.ready_at <= p.now AS freed_now
)
SELECT id, state, run_at,
       -- Wakes waiting Leases: the job is due again, or its host, held back by its concurrency
       -- until now, may lease again.
       CASE WHEN (state = 'queued' AND delay_ms = 0) OR EXISTS (SELECT 1 FROM host_moved WHERE freed_now)
            THEN pg_notify('crawlfleet_jobs', '') END AS notified,
       CASE WHEN state <> 'queued' AND EXISTS (SELECT 1 FROM job_watchers WHERE expires_at > now())
            THEN pg_notify('crawlfleet_jobs_finished', '') END AS finished_notified
FROM failed;

-- name: job_reap_expired
-- Ends leases that ran out: the attempt counts as failed ('lease expired'); the job is queued
-- at once in its old place in the order, dead when its attempts are spent, or cancelled if
-- cancellation was asked.
-- Params: batch size, now.
WITH old AS (
    SELECT j.id, j.attempt, j.lease_token, j.leased_by, j.leased_at, j.target_url,
           CASE WHEN j.cancel_requested THEN 'cancelled'::job_state
                WHEN j.attempt < j.max_attempts THEN 'queued'::job_state
                ELSE 'dead'::job_state END AS next_state
    FROM jobs AS j
    WHERE j.state = 'leased' AND j.lease_expires_at <= coalesce($2::timestamptz, now())
    ORDER BY j.lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), reaped AS (
    UPDATE jobs AS j
    SET state = old.next_state,
        run_at = CASE WHEN old.next_state = 'queued' THEN least(j.run_at, coalesce($2::timestamptz, now()))
                      ELSE j.run_at END,
        lease_token = CASE WHEN old.next_state = 'queued' THEN NULL ELSE j.lease_token END,
        lease_expires_at = NULL,
        finished_at = CASE WHEN old.next_state <> 'queued' THEN coalesce($2::timestamptz, now()) END,
        last_error = 'lease_expired: lease expired'
    FROM old
    WHERE j.id = old.id
    RETURNING j.id, j.kind, j.state, j.run_at, j.host
), counted AS (
    INSERT INTO job_count_deltas (kind, state, delta)
    SELECT kind, state, sum(n)
    FROM (SELECT kind, 'leased'::job_state AS state, -1 AS n FROM reaped
          UNION ALL
          SELECT kind, state, 1 FROM reaped) AS moves
    GROUP BY kind, state
), history AS (
    UPDATE job_attempts AS a
    SET finished_at = greatest(a.started_at, coalesce($2::timestamptz, now())),
        outcome = 'expired', error_type = 'lease_expired', error_message = 'lease expired'
    FROM old
    WHERE a.job_id = old.id AND a.lease_token = old.lease_token
), host_rows AS (
    SELECT h.host FROM hosts AS h
    WHERE h.host IN (SELECT reaped.host FROM reaped)
    ORDER BY h.host
    FOR UPDATE
), host_moved AS (
    -- The slot is free and the job may be queued again: the host may lease again.
    UPDATE hosts AS h
    SET saturated = false,
        ready_at = CASE WHEN r.requeued_at IS NOT NULL OR h.ready_at IS NOT NULL THEN
            greatest(least(coalesce(h.ready_at, 'infinity'), coalesce(r.requeued_at, coalesce($2::timestamptz, now()))),
                     h.next_start_at, h.paused_until, h.robots_fetching_until) END
    FROM (SELECT reaped.host, min(reaped.run_at) FILTER (WHERE reaped.state = 'queued') AS requeued_at
          FROM reaped GROUP BY reaped.host) AS r,
         host_rows
    WHERE h.host = r.host AND host_rows.host = r.host
)
SELECT id, state,
       CASE WHEN state = 'queued' THEN pg_notify('crawlfleet_jobs', '') END AS notified,
       CASE WHEN state <> 'queued' AND EXISTS (SELECT 1 FROM job_watchers WHERE expires_at > now())
            THEN pg_notify('crawlfleet_jobs_finished', '') END AS finished_notified
FROM reaped;

-- name: job_cancel
-- A queued job is cancelled at once; a leased one is marked and ends at its next heartbeat
-- (or when its lease runs out). Returns nothing for a missing job. Params: job id, now.
WITH target AS (
    SELECT id, state FROM jobs WHERE id = $1 FOR UPDATE
), changed AS (
    UPDATE jobs AS j
    SET state = CASE WHEN target.state = 'queued' THEN 'cancelled'::job_state ELSE j.state END,
        finished_at = CASE WHEN target.state = 'queued' THEN coalesce($2::timestamptz, now())
                           ELSE j.finished_at END,
        cancel_requested = j.cancel_requested OR target.state = 'leased'
    FROM target
    WHERE j.id = target.id AND target.state IN ('queued', 'leased')
    RETURNING j.id, j.kind, j.state
), counted AS (
    INSERT INTO job_count_deltas (kind, state, delta)
    SELECT changed.kind, moves.state, moves.n
    FROM changed, LATERAL (VALUES ('queued'::job_state, -1), ('cancelled'::job_state, 1)) AS moves(state, n)
    WHERE changed.state = 'cancelled'
)
SELECT target.id, coalesce(changed.state, target.state) AS state,
       CASE WHEN changed.state = 'cancelled' AND EXISTS (SELECT 1 FROM job_watchers WHERE expires_at > now())
            THEN pg_notify('crawlfleet_jobs_finished', '') END AS finished_notified
FROM target LEFT JOIN changed ON changed.id = target.id;

-- name: job_get
-- The job, if the caller may see it: $2 is the owner the caller is confined to (NULL: any job).
SELECT id, kind, state, spec, target_url, attempt, max_attempts, created_at, run_at, leased_at,
       lease_expires_at, leased_by, finished_at, last_error, cancel_requested, result
FROM jobs
WHERE id = $1 AND ($2::text IS NULL OR owner = $2::text);

-- name: job_attempt_list
SELECT attempt, worker_id, started_at, finished_at, outcome, error_type, error_message
FROM job_attempts
WHERE job_id = $1
ORDER BY started_at, attempt;


-- name: database_ping
-- The health probe.
SELECT 1;

-- name: job_table_analyze
-- Refreshes the planner's statistics of jobs after a large load, so the claim walks
-- jobs_available in lease order from the start instead of waiting for autoanalyze (until then
-- the planner guesses a handful of queued rows and scans and sorts the whole backlog). Hosts
-- too: a load brings new hosts, and statistics that still count the few hosts of before make
-- the claim scan and sort every host instead of walking hosts_ready. Samples a bounded number
-- of rows; skipped when autovacuum or another coordinator holds the table.
ANALYZE (SKIP_LOCKED) jobs, hosts;
