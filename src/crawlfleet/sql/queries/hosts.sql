-- Named queries of hosts and host policies as operators see and steer them (the Admin service's
-- host calls and the host gauges); see jobs.sql for the format. The tables and the functions
-- called here are migration 0007's; docs/politeness.md explains them.
-- A host's leases in flight are counted from jobs_host_leased, its queued jobs from
-- jobs_host_queue up to a bound: a host with millions of queued jobs costs no more than the bound.
-- The leases' state is written as the range that index is defined with ("= 'leased'" in other
-- words), so that only it matches: with ten million finished jobs on hosts in the table the
-- planner otherwise counted each listed host's leases by walking every lease of the fleet
-- (jobs_lease_expiry): 10,185 buffers for a page of 50 hosts against 302 (bench/admin_depth.py).
-- ready_at is only ever moved earlier here (never before the host's delay, pause or robots.txt
-- fetch ends), or later by a pause; a host made ready sends NOTIFY crawlfleet_jobs.

-- name: host_get
-- One host with its leases in flight and its queued jobs counted up to $2 (queued_capped: more).
-- 'infinity' (paused until resumed) comes back as NULL with paused set. Params: host, queued
-- bound, now.
SELECT h.host, h.policy_pattern, h.max_concurrency, h.delay_ms, h.obey_robots,
       CASE WHEN isfinite(h.ready_at) THEN h.ready_at END AS ready_at,
       coalesce(h.paused_until > clock.now, false) AS paused,
       CASE WHEN isfinite(h.paused_until) THEN h.paused_until END AS paused_until,
       h.pause_reason,
       coalesce(h.paused_until <= clock.now, false) AS probing,
       h.error_streak, h.window_started_at, h.window_429, h.window_5xx, h.window_errors,
       h.robots_state, h.robots_fetched_at, h.robots_expires_at, h.robots_delay_ms, h.adaptive_delay_ms,
       h.leases_started, h.last_lease_at, h.saturated,
       (SELECT count(*) FROM jobs AS j
         WHERE j.host = h.host AND j.state >= 'leased' AND j.state <= 'leased') AS in_flight,
       least(queued.n, $2::integer) AS queued,
       queued.n > $2::integer AS queued_capped,
       coalesce(h.policy_crawls, '{}') AS policy_crawls
FROM (SELECT coalesce($3::timestamptz, now()) AS now) AS clock
JOIN hosts AS h ON h.host = $1
CROSS JOIN LATERAL (
    SELECT count(*) AS n
    FROM (SELECT 1 FROM jobs AS j WHERE j.host = h.host AND j.state = 'queued' LIMIT $2::integer + 1) AS upto
) AS queued;

-- name: host_list
-- Hosts after a cursor in host order, as host_get has them. Params: after host (NULL: from the
-- first), name prefix (NULL: any), only paused now, only with queued jobs, limit, queued bound,
-- now. A host has queued jobs only if its ready_at is set (the claim keeps it so), which spares
-- the index probe for idle hosts.
SELECT h.host, h.policy_pattern, h.max_concurrency, h.delay_ms, h.obey_robots,
       CASE WHEN isfinite(h.ready_at) THEN h.ready_at END AS ready_at,
       coalesce(h.paused_until > clock.now, false) AS paused,
       CASE WHEN isfinite(h.paused_until) THEN h.paused_until END AS paused_until,
       h.pause_reason,
       coalesce(h.paused_until <= clock.now, false) AS probing,
       h.error_streak, h.window_started_at, h.window_429, h.window_5xx, h.window_errors,
       h.robots_state, h.robots_fetched_at, h.robots_expires_at, h.robots_delay_ms, h.adaptive_delay_ms,
       h.leases_started, h.last_lease_at, h.saturated,
       (SELECT count(*) FROM jobs AS j
         WHERE j.host = h.host AND j.state >= 'leased' AND j.state <= 'leased') AS in_flight,
       least(queued.n, $6::integer) AS queued,
       queued.n > $6::integer AS queued_capped,
       coalesce(h.policy_crawls, '{}') AS policy_crawls
FROM (SELECT coalesce($7::timestamptz, now()) AS now) AS clock
JOIN LATERAL (
    SELECT hosts.* FROM hosts
    WHERE hosts.host > coalesce($1::text, '')
      AND ($2::text IS NULL OR starts_with(hosts.host, $2::text))
      AND (NOT $3::boolean OR hosts.paused_until > clock.now)
      AND (NOT $4::boolean OR (hosts.ready_at IS NOT NULL
                               AND EXISTS (SELECT 1 FROM jobs AS q WHERE q.host = hosts.host AND q.state = 'queued')))
    ORDER BY hosts.host
    LIMIT $5
) AS h ON true
CROSS JOIN LATERAL (
    SELECT count(*) AS n
    FROM (SELECT 1 FROM jobs AS j WHERE j.host = h.host AND j.state = 'queued' LIMIT $6::integer + 1) AS upto
) AS queued
ORDER BY h.host;

-- name: host_pause
-- Pauses a host until now + $2 ms ($2 NULL: 'infinity', until resumed). Pauses only lengthen: a
-- later one in force stays, with its reason; otherwise the reason becomes $3. The host's place
-- in line moves past the pause. Returns nothing for an unknown host. Params: host, pause ms,
-- reason, now.
WITH clock AS (
    SELECT CASE WHEN $2::float8 IS NULL THEN 'infinity'::timestamptz
                ELSE coalesce($4::timestamptz, now()) + $2::float8 * interval '1 millisecond' END AS until
)
UPDATE hosts AS h
SET paused_until = greatest(h.paused_until, clock.until),
    pause_reason = CASE WHEN h.paused_until IS NULL OR h.paused_until <= clock.until THEN $3::text
                        ELSE h.pause_reason END,
    ready_at = CASE WHEN h.ready_at IS NOT NULL THEN greatest(h.ready_at, h.paused_until, clock.until) END
FROM clock
WHERE h.host = $1
RETURNING h.host;

-- name: host_resume
-- Ends a host's pause (any kind) and its failures in a row, so its full limits apply at once. A
-- robots.txt found unreachable is due again now: the next claim fetches it before any other job
-- of the host (complete disallow holds until a fetch gets an answer).
-- Its ready_at moves back to its earliest queued job's run_at, but not before now or the end of
-- its delay or robots.txt fetch, and wakes a waiting Lease when that is now. The earliest run_at
-- is the least of the first entry of each priority in jobs_host_queue (priorities are 0 to 100):
-- at most 101 index probes however long the backlog. Returns nothing for an unknown host.
-- Params: host, now.
WITH clock AS (
    SELECT coalesce($2::timestamptz, now()) AS now
), next_due AS (
    SELECT min(first.run_at) AS run_at
    FROM generate_series(0, 100) AS p(priority)
    CROSS JOIN LATERAL (
        SELECT j.run_at FROM jobs AS j
        WHERE j.host = $1 AND j.state = 'queued' AND j.priority = p.priority
        ORDER BY j.run_at
        LIMIT 1
    ) AS first
), resumed AS (
    UPDATE hosts AS h
    SET paused_until = NULL,
        pause_reason = NULL,
        error_streak = 0,
        robots_failures = 0,
        robots_expires_at = CASE WHEN h.robots_state = 'unreachable' THEN least(h.robots_expires_at, clock.now)
                                 ELSE h.robots_expires_at END,
        ready_at = CASE WHEN h.ready_at IS NOT NULL THEN
            least(h.ready_at, greatest(coalesce(next_due.run_at, clock.now), clock.now,
                                       h.next_start_at, h.robots_fetching_until)) END
    FROM clock, next_due
    WHERE h.host = $1
    RETURNING h.host, h.ready_at, clock.now
)
SELECT host, CASE WHEN ready_at <= now THEN pg_notify('crawlfleet_jobs', '') END AS notified
FROM resumed;

-- name: host_policy_lock
-- Policy changes take turns (until the transaction ends): each one's copy into the hosts then
-- sees every policy committed before it, so two changes of overlapping patterns cannot leave a
-- host with a stale copy.
SELECT pg_advisory_xact_lock(hashtext('crawlfleet.host_policies'));

-- name: host_policy_upsert
-- Sets a policy, replacing the pattern's earlier one. Params: pattern, max concurrency, delay
-- ms, obey robots (NULL limits: the fleet default), note, now.
INSERT INTO host_policies AS p (pattern, max_concurrency, delay_ms, obey_robots, note, updated_at)
VALUES ($1, $2, $3, $4, $5, coalesce($6::timestamptz, now()))
ON CONFLICT (pattern) DO UPDATE
SET max_concurrency = excluded.max_concurrency, delay_ms = excluded.delay_ms,
    obey_robots = excluded.obey_robots, note = excluded.note, updated_at = excluded.updated_at
RETURNING p.pattern, p.max_concurrency, p.delay_ms, p.obey_robots, p.note, p.updated_at;

-- name: host_policy_delete
-- Removes a policy; returns it (nothing when the pattern had none).
DELETE FROM host_policies WHERE pattern = $1
RETURNING pattern, max_concurrency, delay_ms, obey_robots, note, updated_at;

-- name: host_policy_apply
-- Copies the policies in force into the hosts a pattern matches, after it was set or removed;
-- new limits may let a host lease now, so waiting Leases look again. Params: pattern.
SELECT applied.hosts, CASE WHEN applied.hosts > 0 THEN pg_notify('crawlfleet_jobs', '') END AS notified
FROM crawlfleet_hosts_apply_policy($1::text) AS applied(hosts);

-- name: host_policy_governed
-- How many known hosts a pattern's policy is the one in force for. Params: pattern.
SELECT count(*) AS hosts FROM hosts WHERE policy_pattern = $1;

-- name: host_policy_list
-- Policies after a cursor in pattern order. Params: after pattern (NULL: from the first), limit.
SELECT pattern, max_concurrency, delay_ms, obey_robots, note, updated_at
FROM host_policies
WHERE pattern > coalesce($1::text, '')
ORDER BY pattern
LIMIT $2;

-- name: host_gauges
-- Hosts with queued jobs (their ready_at is set), and of them those at their concurrency limit
-- when last claimed: a walk of the partial index hosts_ready_at.
SELECT count(*) AS queued, count(*) FILTER (WHERE saturated) AS saturated
FROM hosts
WHERE ready_at IS NOT NULL;

-- name: host_paused_by_reason
-- Hosts paused now, by the class of their pause reason (its text before the first ':'), from the
-- partial index hosts_paused. Params: now.
SELECT split_part(coalesce(pause_reason, ''), ':', 1) AS reason, count(*) AS hosts
FROM hosts
WHERE paused_until > coalesce($1::timestamptz, now())
GROUP BY 1;
