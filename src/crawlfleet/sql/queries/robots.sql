-- Named queries of hosts' robots.txt (RFC 9309), fetched by workers for the whole fleet; see
-- jobs.sql for the format and docs/politeness.md ("robots.txt") for the design. A claim hands one
-- lease of a host whose robots.txt is unknown or stale `fetch_robots` and holds the host's other
-- jobs back (robots_fetching_until) until that lease reports here.

-- name: host_robots_report
-- Stores what a lease fetched for its host, if the lease is still held under its token, by the
-- caller ($3: the caller's principal; NULL without auth skips the check), and is of that host;
-- returns one row either way (lease_held false: nothing changed). The state decides the rest:
-- 'rules' keeps the body and its Crawl-delay (ms, already capped), and the host's next lease
-- starts no sooner than that delay from now; 'allow_all' keeps nothing. Both are used until now +
-- TTL and close a pause that an unreachable robots.txt put on the host, once it has ended.
-- 'unreachable' pauses the host for the backoff's step (initial, doubled at each failure in a row,
-- at most the longest), and the next fetch is due when that pause ends. Either way the fetch is
-- over: the host's other jobs may be leased again (ready_at moves earlier, never before the delay
-- or a pause) and waiting Leases are woken.
-- Params: job id, lease token, principal, host, state, HTTP status (NULL: no answer), body, delay
-- ms, TTL ms, first and longest pause ms, pause reason, now.
WITH lease AS (
    SELECT j.host FROM jobs AS j
    WHERE j.id = $1 AND j.lease_token = $2::uuid AND j.state = 'leased' AND j.host = $4::text
      AND ($3::text IS NULL OR j.lease_principal = $3::text)
), locked AS (
    SELECT h.host, h.paused_until, h.pause_reason, coalesce($13::timestamptz, now()) AS now,
           CASE WHEN $5::text = 'unreachable'
                THEN least($11::float8, $10::float8 * power(2::float8, least(h.robots_failures, 30))) END AS pause_ms
    FROM hosts AS h JOIN lease ON lease.host = h.host
    FOR UPDATE OF h
), planned AS (
    SELECT l.*,
           CASE WHEN l.pause_ms IS NOT NULL THEN crawlfleet_paused_until(l.paused_until, l.now, l.pause_ms)
                WHEN l.pause_reason LIKE 'robots_unreachable:%' AND l.paused_until <= l.now THEN NULL
                ELSE l.paused_until END AS new_paused_until
    FROM locked AS l
), stored AS (
    UPDATE hosts AS h
    SET robots_state = $5::text,
        robots_status = $6::integer,
        robots_body = CASE WHEN $5::text = 'rules' THEN $7::bytea END,
        robots_delay_ms = CASE WHEN $5::text = 'rules' THEN $8::integer END,
        robots_fetched_at = p.now,
        -- Unreachable: fetched again when its own pause ends (or a longer one, which holds the
        -- claims back as long).
        robots_expires_at = p.now + coalesce(p.pause_ms, $9::float8) * interval '1 millisecond',
        robots_fetching_until = NULL,
        robots_failures = CASE WHEN p.pause_ms IS NOT NULL THEN h.robots_failures + 1 ELSE 0 END,
        -- The lease that fetched the rules fetches its page now: a Crawl-delay counts from here,
        -- not from that lease's start, when it was not known yet.
        next_start_at = CASE WHEN $5::text = 'rules' AND $8::integer > 0
                             THEN greatest(h.next_start_at, p.now + $8::integer * interval '1 millisecond')
                             ELSE h.next_start_at END,
        paused_until = p.new_paused_until,
        -- Named after the robots.txt only when its pause is the one in force (not when an
        -- operator's or a server's longer pause already was).
        pause_reason = CASE WHEN p.new_paused_until IS NULL THEN NULL
                            WHEN p.pause_ms IS NOT NULL AND p.new_paused_until IS DISTINCT FROM p.paused_until
                                THEN $12::text
                            ELSE h.pause_reason END,
        ready_at = CASE WHEN h.ready_at IS NOT NULL
                        THEN greatest(least(h.ready_at, p.now), h.next_start_at, p.new_paused_until,
                                      CASE WHEN $5::text = 'rules' AND $8::integer > 0
                                           THEN p.now + $8::integer * interval '1 millisecond' END) END
    FROM planned AS p
    WHERE h.host = p.host
    RETURNING h.robots_state, h.robots_fetched_at, h.robots_expires_at, h.ready_at, p.now
)
SELECT EXISTS (SELECT 1 FROM lease) AS lease_held,
       stored.robots_state AS state, stored.robots_fetched_at AS version, stored.robots_expires_at AS expires_at,
       -- Waiting Leases look again (and sleep until the host's new ready_at when it is later).
       CASE WHEN stored.ready_at IS NOT NULL THEN pg_notify('crawlfleet_jobs', '') END AS notified
FROM (SELECT 1) AS one
LEFT JOIN stored ON true;

-- name: host_robots_get
-- A host's robots.txt as the fleet holds it: its state, the rules, their version (fetch time) and
-- when they are due again. No row: the host has had no jobs. Params: host.
SELECT robots_state AS state, robots_body AS body, robots_fetched_at AS version, robots_expires_at AS expires_at
FROM hosts
WHERE host = $1::text;
