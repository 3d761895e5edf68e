-- A claim locks only the host-bound jobs it leases. It read each host's next jobs with FOR UPDATE
-- SKIP LOCKED, up to what the call could still lease from that host, then chose among them (one
-- per URL, round-robin across hosts) and leased at most what the call asked for: a claim of 10
-- over 10 ready hosts locked up to 100 rows, a WAL record and a dirtied page each, to lease 10.
-- It now reads those candidates unlocked (the claim holds the hosts' rows, so no other claim is
-- choosing among them) and locks the chosen ones alone. The function is otherwise migration 0020's.

CREATE OR REPLACE FUNCTION crawlfleet_claim(
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
SET plan_cache_mode = force_generic_plan
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
            -- Read, not locked: the hosts' rows are locked by this claim, so no other claim is
            -- taking these hosts' jobs; only the jobs chosen are locked, below.
            SELECT c.id, c.target_url, c.priority, c.run_at, a.nth
            FROM allowance AS a
            CROSS JOIN LATERAL (
                SELECT j.id, j.target_url, j.priority, j.run_at
                FROM jobs AS j
                WHERE j.host = a.host AND j.state = 'queued' AND j.run_at <= v_now
                  AND (cardinality(p_kinds) = 0 OR j.kind = ANY(p_kinds))
                  AND j.target_url <> ALL(a.leased_urls)
                ORDER BY j.priority DESC, j.run_at, j.id
                -- No more than this call can lease: the rest of the host's room is for other claims.
                LIMIT least(a.allowed, p_max - v_taken)
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
        ), grabbed AS (
            -- The chosen jobs locked, each looked up by its key. One another session holds (an
            -- operator's cancel) is skipped; one that stopped being queued since this statement
            -- began fails the state check on its latest version and is left alone.
            SELECT g.id, chosen.nth
            FROM chosen
            CROSS JOIN LATERAL (
                SELECT j.id FROM jobs AS j
                WHERE j.id = chosen.id AND j.state = 'queued'
                FOR UPDATE OF j SKIP LOCKED
            ) AS g
        ), leased AS (
            UPDATE jobs AS j
            SET state = 'leased',
                attempt = j.attempt + 1,
                lease_token = gen_random_uuid(),
                leased_by = p_worker,
                lease_principal = p_principal,
                leased_at = v_now,
                lease_expires_at = v_now + p_lease_ms * interval '1 millisecond'
            FROM grabbed
            WHERE j.id = grabbed.id
            RETURNING j.id, j.kind, j.spec, j.attempt, j.max_attempts, j.lease_token, j.lease_expires_at,
                      j.target_url, j.host, grabbed.nth
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
