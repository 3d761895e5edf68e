-- Fleet-wide politeness: every job with a target URL belongs to a host, and claims lease a
-- host's jobs only within its limits (concurrency, delay between lease starts, pauses,
-- robots.txt). The limits live here, so every coordinator enforces the same ones.
-- docs/politeness.md explains the design; the claim itself is crawlfleet_claim below.

-- The host of the job's normalized target URL: its host name (lower case, IDNA A-labels) with
-- the port when it is not the default (common/hosts.py); NULL for jobs without a target URL,
-- which no host limit applies to.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS host text;
UPDATE jobs
SET host = substring(target_url FROM '^[a-z][a-z0-9+.-]*://([^/?#]*)')
WHERE target_url IS NOT NULL AND state IN ('queued', 'leased');

-- Claims of hostless jobs walk this index in lease order; host-bound jobs are claimed through
-- their host (jobs_host_queue), so a host's throttled backlog is never walked past.
DROP INDEX jobs_available;
CREATE INDEX jobs_available ON jobs (priority DESC, run_at, id) WHERE state = 'queued' AND host IS NULL;
-- A host's queue, in lease order.
CREATE INDEX jobs_host_queue ON jobs (host, priority DESC, run_at, id) WHERE state = 'queued' AND host IS NOT NULL;
-- A host's leases in flight: counted by the claim, at most its concurrency entries per host.
-- The state is a range ("= 'leased'" in other words) so that the claim's probe, which says the
-- same, can only use this index: the indexes on "state = 'leased'" alone would otherwise tie
-- with it when the statistics see few leases, and be scanned whole for each host.
CREATE INDEX jobs_host_leased ON jobs (host)
    WHERE state >= 'leased' AND state <= 'leased' AND host IS NOT NULL;

-- Operators' policies: an exact host ("shop.example") or every host under a domain
-- ("*.example.com" matches example.com and its subdomains). The most specific pattern wins:
-- the exact host, then the longest domain. A NULL limit takes the fleet default (coordinator
-- flags). Limits apply to each matching host on its own, not to the hosts together.
CREATE TABLE host_policies (
    pattern          text        PRIMARY KEY
        CHECK (pattern ~ '^((\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*|\[[0-9a-f:.]+\])(:[0-9]{1,5})?$'
               AND length(pattern) <= 255),
    max_concurrency  integer     CHECK (max_concurrency BETWEEN 1 AND 10000),
    delay_ms         integer     CHECK (delay_ms BETWEEN 0 AND 86400000),
    obey_robots      boolean,
    note             text        NOT NULL DEFAULT '' CHECK (length(note) <= 500),
    updated_at       timestamptz NOT NULL
);

-- One row per host that has had jobs: its policy in force, its place in the claim order, its
-- backoff and its robots.txt.
CREATE TABLE hosts (
    host                   text        PRIMARY KEY CHECK (length(host) BETWEEN 1 AND 255),
    -- The policy in force, copied from host_policies (crawlfleet_host_policy) when the host is
    -- first seen and whenever a matching policy changes; NULL limits take the fleet default.
    policy_pattern         text,
    max_concurrency        integer,
    delay_ms               integer,
    obey_robots            boolean,
    -- Claim order. ready_at: when a claim may next lease here; NULL when no job is queued. It is
    -- never before next_start_at, paused_until or robots_fetching_until. Writers other than
    -- the claim only move it earlier (towards due work, never past those) or later by a pause,
    -- so a concurrent writer can never hide queued work; only the claim, after locking the
    -- row, recomputes it from the queue (and may set it to NULL).
    ready_at               timestamptz,
    -- The priority of the host's best queued job: hosts are served by it, then longest waiting.
    top_priority           smallint    NOT NULL DEFAULT 0,
    -- At its concurrency limit when last claimed: finishing one of its leases makes it ready.
    saturated              boolean     NOT NULL DEFAULT false,
    next_start_at          timestamptz,          -- the last lease start plus the delay
    -- The delay learnt from the host's response times (--adaptive-delay; NULL: none).
    adaptive_delay_ms      integer,
    last_lease_at          timestamptz,
    leases_started         bigint      NOT NULL DEFAULT 0,
    -- Backoff: an operator's pause (infinity), a server's Retry-After, the circuit breaker, or
    -- an unreachable robots.txt.
    paused_until           timestamptz,
    pause_reason           text,
    error_streak           integer     NOT NULL DEFAULT 0,  -- host-level failures in a row
    -- Host-level failures in the window that started at window_started_at (reset hourly).
    window_started_at      timestamptz,
    window_429             integer     NOT NULL DEFAULT 0,
    window_5xx             integer     NOT NULL DEFAULT 0,
    window_errors          integer     NOT NULL DEFAULT 0,  -- timeouts, connection and DNS errors
    -- robots.txt, shared by the fleet. 'unknown': not fetched (or expired); 'rules': a body to
    -- obey; 'allow_all': 4xx, no rules; 'unreachable': 5xx or no answer, the host is paused.
    robots_state           text        NOT NULL DEFAULT 'unknown'
        CHECK (robots_state IN ('unknown', 'rules', 'allow_all', 'unreachable')),
    robots_body            bytea,
    robots_status          integer,
    robots_fetched_at      timestamptz,
    robots_expires_at      timestamptz,
    robots_delay_ms        integer,              -- its Crawl-delay for our agent, capped
    robots_fetching_until  timestamptz,          -- one lease is fetching it: the host waits
    robots_failures        integer     NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70);  -- every claim rewrites its hosts' rows

-- Claims walk ready hosts by priority, longest waiting first.
CREATE INDEX hosts_ready ON hosts (top_priority DESC, ready_at) WHERE ready_at IS NOT NULL;
-- When the next host becomes ready (an idle Lease waits until then).
CREATE INDEX hosts_ready_at ON hosts (ready_at) WHERE ready_at IS NOT NULL;
CREATE INDEX hosts_paused ON hosts (paused_until) WHERE paused_until IS NOT NULL;

-- Hosts of the jobs queued before this migration.
INSERT INTO hosts (host, ready_at, top_priority)
SELECT host, min(run_at), max(priority) FROM jobs WHERE state = 'queued' AND host IS NOT NULL GROUP BY host;
INSERT INTO hosts (host) SELECT DISTINCT host FROM jobs WHERE state = 'leased' AND host IS NOT NULL
ON CONFLICT (host) DO NOTHING;

-- Whether a policy pattern covers a host (common/hosts.py pattern_matches says the same). A
-- pattern without a port covers every port of its name(s); one with a port only that port.
CREATE FUNCTION crawlfleet_pattern_matches(p_pattern text, p_host text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN left(p_pattern, 2) = '*.'
                THEN n.name = substr(p_pattern, 3) OR right(n.name, length(p_pattern) - 1) = substr(p_pattern, 2)
                ELSE n.name = p_pattern END
    FROM (SELECT CASE WHEN p_pattern ~ ':[0-9]+$' THEN p_host
                      ELSE regexp_replace(p_host, ':[0-9]+$', '') END AS name) AS n
$$;

-- The policy of a host: the most specific pattern that covers it. Exact names before domains,
-- then the longer pattern (a port, or a deeper domain) first.
CREATE FUNCTION crawlfleet_host_policy(p_host text) RETURNS host_policies
LANGUAGE sql STABLE AS $$
    SELECT p.* FROM host_policies AS p
    WHERE crawlfleet_pattern_matches(p.pattern, p_host)
    ORDER BY left(p.pattern, 2) <> '*.' DESC, length(p.pattern) DESC
    LIMIT 1
$$;

-- Queued work for hosts: each host's row is made (with the policy in force) or made ready by
-- the earliest run_at given, never before its delay, pause or robots.txt fetch ends. Rows are
-- locked in host order, so concurrent callers never deadlock. Returns the hosts touched.
CREATE FUNCTION crawlfleet_hosts_wake(p_hosts text[], p_run_at timestamptz[], p_priority smallint[])
RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    WITH woken AS (
        INSERT INTO hosts AS h (host, ready_at, top_priority, policy_pattern, max_concurrency, delay_ms, obey_robots)
        SELECT per_host.host, per_host.ready_at, per_host.top_priority,
               policy.pattern, policy.max_concurrency, policy.delay_ms, policy.obey_robots
        FROM (SELECT w.host, min(w.run_at) AS ready_at, max(w.priority) AS top_priority
              FROM unnest(p_hosts, p_run_at, p_priority) AS w(host, run_at, priority)
              WHERE w.host IS NOT NULL
              GROUP BY w.host) AS per_host
        LEFT JOIN LATERAL crawlfleet_host_policy(per_host.host) AS policy ON true
        ORDER BY per_host.host
        ON CONFLICT (host) DO UPDATE
        SET ready_at = greatest(least(coalesce(h.ready_at, 'infinity'), excluded.ready_at),
                                h.next_start_at, h.paused_until, h.robots_fetching_until),
            top_priority = greatest(h.top_priority, excluded.top_priority)
        RETURNING 1
    )
    SELECT count(*) FROM woken
$$;

-- How long a failure pauses its host, in ms (NULL: not at all). p_streak: the host's failures
-- in a row before this one; p_failure: the failure's host class (NULL: not the host's fault);
-- p_asked_ms: a pause the server asked for (Retry-After). The breaker opens at p_threshold
-- failures in a row, for p_initial_ms, doubling with each further one up to p_max_ms.
CREATE FUNCTION crawlfleet_host_pause_ms(
    p_streak integer, p_failure text, p_asked_ms float8, p_threshold integer, p_initial_ms float8, p_max_ms float8
) RETURNS float8
LANGUAGE sql IMMUTABLE AS $$
    SELECT greatest(p_asked_ms,
                    CASE WHEN p_failure IS NOT NULL AND p_streak + 1 >= p_threshold
                         THEN least(p_max_ms, p_initial_ms * power(2::float8, least(p_streak + 1 - p_threshold, 30)))
                    END)
$$;

-- A host's pause after one of p_pause_ms from p_now: pauses only ever lengthen.
CREATE FUNCTION crawlfleet_paused_until(p_paused_until timestamptz, p_now timestamptz, p_pause_ms float8)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_pause_ms > 0 THEN greatest(p_paused_until, p_now + p_pause_ms * interval '1 millisecond')
                ELSE p_paused_until END
$$;

-- Copies the policies in force into the hosts a pattern matches (after the pattern was set or
-- cleared). Returns how many hosts changed.
CREATE FUNCTION crawlfleet_hosts_apply_policy(p_pattern text) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    WITH matching AS (
        SELECT h.host FROM hosts AS h
        WHERE crawlfleet_pattern_matches(p_pattern, h.host)
        ORDER BY h.host
        FOR UPDATE
    ), changed AS (
        UPDATE hosts AS h
        SET policy_pattern = p.pattern, max_concurrency = p.max_concurrency, delay_ms = p.delay_ms,
            obey_robots = p.obey_robots,
            -- New limits may allow a lease now: let the next claim look (it recomputes).
            ready_at = CASE WHEN h.ready_at IS NOT NULL
                            THEN least(h.ready_at, greatest(now(), h.next_start_at, h.paused_until,
                                                            h.robots_fetching_until)) END,
            saturated = false
        FROM matching, LATERAL crawlfleet_host_policy(matching.host) AS p
        WHERE h.host = matching.host
        RETURNING 1
    )
    SELECT count(*) FROM changed
$$;

-- Whether a hostless job of at least p_min_priority is due: the first entry of jobs_available
-- that crawlfleet_claim_hostless would look at, if any. (In lease order, not EXISTS: that keeps
-- it a walk of jobs_available whatever the statistics say of hostless jobs.)
CREATE FUNCTION crawlfleet_hostless_due(p_now timestamptz, p_min_priority integer) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT (SELECT j.id FROM jobs AS j
            WHERE j.state = 'queued' AND j.host IS NULL
              AND j.run_at <= p_now AND j.priority >= p_min_priority
            ORDER BY j.priority DESC, j.run_at, j.id
            LIMIT 1) IS NOT NULL
$$;

-- Claims up to p_max due hostless jobs of priority p_min_priority or more, in lease order (the
-- claim as it was before hosts; crawlfleet_claim runs it around the host-bound part).
CREATE FUNCTION crawlfleet_claim_hostless(
    p_worker text, p_max integer, p_kinds text[], p_lease_ms integer, p_now timestamptz, p_principal text,
    p_min_priority integer
) RETURNS TABLE (
    id bigint, kind text, spec bytea, attempt integer, max_attempts integer, lease_token uuid,
    lease_expires_at timestamptz, host text, fetch_robots boolean, robots_version timestamptz
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := coalesce(p_now, now());
BEGIN
    RETURN QUERY
    WITH candidates AS (
        SELECT j.id, j.target_url, j.priority, j.run_at
        FROM jobs AS j
        WHERE j.state = 'queued' AND j.host IS NULL
          AND j.run_at <= v_now AND j.priority >= p_min_priority
          AND (cardinality(p_kinds) = 0 OR j.kind = ANY(p_kinds))
          AND (j.target_url IS NULL OR NOT EXISTS (
                  SELECT 1 FROM jobs AS l WHERE l.target_url = j.target_url AND l.state = 'leased'))
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT p_max
        FOR UPDATE SKIP LOCKED
    ), chosen AS (
        SELECT ranked.id FROM (
            SELECT cd.id, row_number() OVER (PARTITION BY coalesce(cd.target_url, cd.id::text)
                                             ORDER BY cd.priority DESC, cd.run_at, cd.id) AS nth
            FROM candidates AS cd
        ) AS ranked
        WHERE ranked.nth = 1
    ), leased AS (
        UPDATE jobs AS j
        SET state = 'leased',
            attempt = j.attempt + 1,
            lease_token = gen_random_uuid(),
            leased_by = p_worker,
            lease_principal = p_principal,
            leased_at = v_now,
            lease_expires_at = v_now + p_lease_ms * interval '1 millisecond'
        FROM chosen
        WHERE j.id = chosen.id
        RETURNING j.id, j.kind, j.spec, j.attempt, j.max_attempts, j.lease_token, j.lease_expires_at, j.target_url
    ), counted AS (
        INSERT INTO job_count_deltas (kind, state, delta)
        SELECT pk.kind, moves.state, moves.n
        FROM (SELECT leased.kind, count(*) AS c FROM leased GROUP BY leased.kind) AS pk,
             LATERAL (VALUES ('queued'::job_state, -pk.c), ('leased'::job_state, pk.c)) AS moves(state, n)
    ), history AS (
        -- clock_timestamp(): after the row passed jobs_target_url_leased (which may have
        -- waited for the URL's previous lease to end), so attempts of a URL never overlap.
        INSERT INTO job_attempts (job_id, attempt, lease_token, worker_id, target_url, started_at, outcome)
        SELECT leased.id, leased.attempt, leased.lease_token, p_worker, leased.target_url,
               coalesce(p_now, clock_timestamp()), 'running'
        FROM leased
    )
    SELECT leased.id, leased.kind, leased.spec, leased.attempt, leased.max_attempts, leased.lease_token,
           leased.lease_expires_at, NULL::text, false, NULL::timestamptz
    FROM leased;
END
$$;

-- The claim: leases up to p_max due jobs for a worker, host-bound jobs first (within their
-- hosts' limits), then hostless ones, in one call. Two steps, for a reason: the first locks the
-- hosts whose turn it is (SKIP LOCKED: two claims never serve one host at once); the second is
-- a new statement, so its snapshot sees every lease that other claims of those hosts committed
-- before the locks were taken, and the in-flight counts it makes are exact.
--
-- Every statement of a claim (hostless ones included) walks an index in its order or probes
-- one, and only ever sorts the few rows it picked. Statistics that lag a bulk load (a hosts
-- table analyzed when it held a few hosts, a jobs table before its backlog) make a scan and
-- sort of every host, or of the whole backlog, look cheaper: each claim would then pay for it.
-- So the claim plans without sequential scans and sorts wherever an index can do instead.
CREATE FUNCTION crawlfleet_claim(
    p_worker text, p_max integer, p_kinds text[], p_lease_ms integer, p_now timestamptz, p_principal text,
    p_default_concurrency integer, p_default_delay_ms integer, p_default_obey_robots boolean,
    p_saturated_recheck_ms integer
) RETURNS TABLE (
    id bigint, kind text, spec bytea, attempt integer, max_attempts integer, lease_token uuid,
    lease_expires_at timestamptz, host text, fetch_robots boolean, robots_version timestamptz
)
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_sort = off
AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := coalesce(p_now, now());
    v_hosts hosts[];
    v_names text[];
    v_visited text[] := '{}';
    v_rounds integer := 0;
    v_got integer;
    v_taken integer := 0;
    v_host_top integer;
    v_last_round boolean;
BEGIN
    -- Hostless jobs of a higher priority than every ready host's best job come first.
    SELECT hosts.top_priority INTO v_host_top FROM hosts
    WHERE hosts.ready_at <= v_now
    ORDER BY hosts.top_priority DESC, hosts.ready_at
    LIMIT 1;
    -- (Each call of crawlfleet_claim_hostless is a statement of its own: one index probe first
    -- says whether it can find anything.)
    IF v_host_top IS NOT NULL AND crawlfleet_hostless_due(v_now, v_host_top + 1) THEN
        RETURN QUERY SELECT * FROM crawlfleet_claim_hostless(
            p_worker, p_max, p_kinds, p_lease_ms, p_now, p_principal, v_host_top + 1);
        GET DIAGNOSTICS v_taken = ROW_COUNT;
        IF v_taken >= p_max THEN
            RETURN;
        END IF;
    END IF;
    -- A host may yield nothing (its jobs cancelled, or of other kinds): look at further hosts,
    -- a bounded number of times. No host ready: none to look at.
    WHILE v_host_top IS NOT NULL LOOP
        -- The locked rows themselves, in claim order: a locked row is its latest version and
        -- stays as it is until this claim commits, so step 2 reads them from here rather than
        -- looking each one up again.
        SELECT array_agg(ready.h), array_agg((ready.h).host) INTO v_hosts, v_names
        FROM (SELECT hosts AS h FROM hosts
              WHERE hosts.ready_at <= v_now AND hosts.host <> ALL(v_visited)
              ORDER BY hosts.top_priority DESC, hosts.ready_at
              LIMIT p_max - v_taken
              FOR UPDATE SKIP LOCKED) AS ready;
        EXIT WHEN v_names IS NULL;
        -- Fewer ready hosts than wanted: after these, none is left to look at.
        v_last_round := cardinality(v_names) < p_max - v_taken;
        v_visited := v_visited || v_names;
        v_rounds := v_rounds + 1;

        -- Every join below is by a host's place in v_hosts (nth) or through an index: its cost
        -- grows with the hosts locked, never with the hosts, jobs or leases of the whole queue.
        RETURN QUERY
        WITH locked AS (
            SELECT h.*, h.ordinality AS nth,
                   -- After a host failure, and after a pause, one lease at a time until one
                   -- succeeds: the breaker opens before more requests than its count reach a
                   -- failing host, and a pause ends with one probe.
                   CASE WHEN h.paused_until IS NOT NULL OR h.error_streak > 0 THEN 1
                        ELSE coalesce(h.max_concurrency, p_default_concurrency) END AS concurrency,
                   coalesce(h.obey_robots, p_default_obey_robots) AS robots_on,
                   greatest(coalesce(h.delay_ms, p_default_delay_ms),
                            CASE WHEN coalesce(h.obey_robots, p_default_obey_robots) THEN h.robots_delay_ms END,
                            h.adaptive_delay_ms)
                       AS delay
            FROM unnest(v_hosts) WITH ORDINALITY AS h
        ), room AS (
            SELECT l.*,
                   greatest(0, l.concurrency - i.n) AS free,
                   i.urls AS leased_urls,
                   -- robots.txt unknown or stale: one lease fetches it, the rest wait for it.
                   l.robots_on AND (l.robots_expires_at IS NULL OR l.robots_expires_at <= v_now) AS needs_robots,
                   -- Inside the delay, paused, or robots.txt being fetched (ready_at is never
                   -- before these, but a claim checks rather than trusts).
                   greatest(l.next_start_at, l.paused_until, l.robots_fetching_until) > v_now AS blocked
            FROM locked AS l
            CROSS JOIN LATERAL (
                -- The host's leases in flight and their URLs. A URL belongs to one host, so these
                -- are the only leases that can hold a URL of this host. "state = 'leased'" is
                -- written as a range, as in jobs_host_leased's predicate: only that index can then
                -- answer (the planner cannot prove "=" from it), so this is one probe whatever the
                -- statistics say, never a scan of every lease per host.
                SELECT count(*) AS n, coalesce(array_agg(f.target_url), '{}') AS urls
                FROM jobs AS f
                WHERE f.host = l.host AND f.state >= 'leased' AND f.state <= 'leased'
            ) AS i
        ), allowance AS (
            SELECT r.*,
                   CASE WHEN r.blocked THEN 0
                        WHEN r.needs_robots OR r.delay > 0 THEN least(r.free, 1)
                        ELSE r.free END AS allowed
            FROM room AS r
        ), candidates AS (
            SELECT c.id, c.target_url, c.priority, c.run_at, a.nth
            FROM allowance AS a
            CROSS JOIN LATERAL (
                SELECT j.id, j.target_url, j.priority, j.run_at
                FROM jobs AS j
                WHERE j.host = a.host AND j.state = 'queued' AND j.run_at <= v_now
                  AND (cardinality(p_kinds) = 0 OR j.kind = ANY(p_kinds))
                  AND j.target_url <> ALL(a.leased_urls)
                ORDER BY j.priority DESC, j.run_at, j.id
                LIMIT a.allowed
                FOR UPDATE OF j SKIP LOCKED
            ) AS c
            WHERE a.allowed > 0
        ), chosen AS (
            -- One per URL; across hosts, round-robin (each host's first job, then seconds, …).
            SELECT ranked.id, ranked.nth
            FROM (
                SELECT cd.id, cd.nth,
                       row_number() OVER (PARTITION BY cd.target_url ORDER BY cd.priority DESC, cd.run_at, cd.id) AS per_url,
                       row_number() OVER (PARTITION BY cd.nth ORDER BY cd.priority DESC, cd.run_at, cd.id) AS per_host
                FROM candidates AS cd
            ) AS ranked
            WHERE ranked.per_url = 1
            ORDER BY ranked.per_host, ranked.nth
            LIMIT p_max - v_taken
        ), leased AS (
            UPDATE jobs AS j
            SET state = 'leased',
                attempt = j.attempt + 1,
                lease_token = gen_random_uuid(),
                leased_by = p_worker,
                lease_principal = p_principal,
                leased_at = v_now,
                lease_expires_at = v_now + p_lease_ms * interval '1 millisecond'
            FROM chosen
            WHERE j.id = chosen.id
            RETURNING j.id, j.kind, j.spec, j.attempt, j.max_attempts, j.lease_token, j.lease_expires_at,
                      j.target_url, j.host, chosen.nth
        ), taken AS (
            -- fetchers: leases that fetch (no-op jobs stand for a URL but never fetch it, so they
            -- neither fetch robots.txt nor wait for it).
            SELECT leased.nth, count(*) AS n, array_agg(leased.id) AS ids,
                   count(*) FILTER (WHERE leased.kind <> 'noop') AS fetchers
            FROM leased GROUP BY leased.nth
        ), per_host AS (
            SELECT a.nth, a.host, a.free, a.delay, a.needs_robots, a.blocked, a.robots_on, a.robots_state,
                   a.robots_fetched_at, a.paused_until, a.robots_fetching_until, a.next_start_at, a.ready_at,
                   coalesce(t.n, 0) AS taken, coalesce(t.fetchers, 0) AS fetchers,
                   nxt.run_at AS next_run_at, nxt.priority AS next_priority
            FROM allowance AS a
            LEFT JOIN taken AS t ON t.nth = a.nth
            LEFT JOIN LATERAL (
                -- The host's next queued job, the ones leased now aside (this snapshot still
                -- sees them queued).
                SELECT q.run_at, q.priority FROM jobs AS q
                WHERE q.host = a.host AND q.state = 'queued' AND q.id <> ALL(coalesce(t.ids, '{}'))
                ORDER BY q.priority DESC, q.run_at, q.id
                LIMIT 1
            ) AS nxt ON true
        ), scheduled AS (
            SELECT p.*,
                   CASE WHEN p.taken > 0 THEN v_now + p.delay * interval '1 millisecond'
                        ELSE p.next_start_at END AS new_next_start,
                   CASE WHEN p.fetchers > 0 AND p.needs_robots
                        THEN v_now + p_lease_ms * interval '1 millisecond'
                        ELSE p.robots_fetching_until END AS new_fetching_until,
                   p.next_run_at IS NOT NULL AND p.free - p.taken <= 0 AS now_saturated
            FROM per_host AS p
        ), hosts_moved AS (
            UPDATE hosts AS h
            SET leases_started = h.leases_started + s.taken,
                last_lease_at = CASE WHEN s.taken > 0 THEN v_now ELSE h.last_lease_at END,
                next_start_at = s.new_next_start,
                robots_fetching_until = s.new_fetching_until,
                saturated = s.now_saturated,
                top_priority = coalesce(s.next_priority, 0),
                ready_at = CASE
                    WHEN s.next_run_at IS NULL THEN NULL
                    WHEN s.blocked THEN greatest(h.ready_at, s.next_start_at, s.paused_until, s.robots_fetching_until)
                    -- Nothing leased though the host had room: its jobs are another kind or
                    -- held by other sessions, and it keeps its place; or none is due yet (a
                    -- finished lease made the host ready early), and it waits for the first.
                    WHEN s.taken = 0 AND NOT s.now_saturated THEN
                        CASE WHEN s.next_run_at <= v_now THEN h.ready_at
                             ELSE greatest(h.ready_at, (SELECT min(q.run_at) FROM jobs AS q
                                                        WHERE q.host = s.host AND q.state = 'queued')) END
                    ELSE greatest(s.next_run_at, s.new_next_start, s.paused_until, s.new_fetching_until,
                                  CASE WHEN s.now_saturated
                                       THEN v_now + p_saturated_recheck_ms * interval '1 millisecond' END,
                                  -- Served now: behind every host already waiting.
                                  v_now)
                END
            FROM scheduled AS s
            WHERE h.host = s.host
        ), counted AS (
            INSERT INTO job_count_deltas (kind, state, delta)
            SELECT pk.kind, moves.state, moves.n
            FROM (SELECT leased.kind, count(*) AS c FROM leased GROUP BY leased.kind) AS pk,
                 LATERAL (VALUES ('queued'::job_state, -pk.c), ('leased'::job_state, pk.c)) AS moves(state, n)
        ), history AS (
            -- clock_timestamp(): after the row passed jobs_target_url_leased (which may have
            -- waited for the URL's previous lease to end), so attempts of a URL never overlap.
            INSERT INTO job_attempts (job_id, attempt, lease_token, worker_id, target_url, started_at, outcome)
            SELECT leased.id, leased.attempt, leased.lease_token, p_worker, leased.target_url,
                   coalesce(p_now, clock_timestamp()), 'running'
            FROM leased
        )
        SELECT leased.id, leased.kind, leased.spec, leased.attempt, leased.max_attempts, leased.lease_token,
               leased.lease_expires_at, leased.host, s.needs_robots AND leased.kind <> 'noop',
               CASE WHEN s.robots_on AND s.robots_state = 'rules' AND NOT s.needs_robots
                    THEN s.robots_fetched_at END
        FROM leased JOIN scheduled AS s ON s.nth = leased.nth;
        GET DIAGNOSTICS v_got = ROW_COUNT;
        v_taken := v_taken + v_got;
        EXIT WHEN v_taken >= p_max OR v_rounds >= 4 OR v_last_round;
    END LOOP;

    -- Hostless jobs after the host-bound ones (ties go to hosts).
    IF v_taken < p_max AND crawlfleet_hostless_due(v_now, 0) THEN
        RETURN QUERY SELECT * FROM crawlfleet_claim_hostless(
            p_worker, p_max - v_taken, p_kinds, p_lease_ms, p_now, p_principal, 0);
    END IF;
END
$$;
