-- A crawl's politeness (CrawlSpec.politeness): host policies owned by the crawl, live while it
-- runs. The policy in force for a host is, in this order: the most specific operator policy
-- (host_policies) that covers it; else, the running crawls' policies that cover it, combined so
-- that the strictest value of each limit wins (least concurrency, longest delay, robots.txt
-- obeyed if any of them obeys it); else the fleet defaults. docs/crawls.md says why.

CREATE TABLE crawl_host_policies (
    crawl_id         bigint  NOT NULL REFERENCES crawls (id) ON DELETE CASCADE,
    -- As host_policies.pattern: the seed's host name, its origin's host, or "*.domain".
    pattern          text    NOT NULL
        CHECK (pattern ~ '^((\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*|\[[0-9a-f:.]+\])(:[0-9]{1,5})?$'
               AND length(pattern) <= 255),
    max_concurrency  integer CHECK (max_concurrency BETWEEN 1 AND 10000),
    delay_ms         integer CHECK (delay_ms BETWEEN 0 AND 86400000),
    obey_robots      boolean,
    PRIMARY KEY (crawl_id, pattern)
);

-- The running crawls whose policies are the one in force (NULL: an operator's policy, or none).
ALTER TABLE hosts ADD COLUMN policy_crawls bigint[];

-- The policy in force for a host, with the crawls it comes from (crawl_ids NULL for an operator's
-- policy). No row: the fleet defaults. crawl_host_policies only ever holds running crawls' rows
-- (a few), so scanning it costs about what host_policies' scan does.
CREATE FUNCTION crawlfleet_host_policy_in_force(p_host text)
RETURNS TABLE (pattern text, max_concurrency integer, delay_ms integer, obey_robots boolean, crawl_ids bigint[])
LANGUAGE sql STABLE AS $$
    WITH operator AS (  -- looked up once (a CTE used twice is computed once)
        SELECT p.pattern, p.max_concurrency, p.delay_ms, p.obey_robots
        FROM crawlfleet_host_policy(p_host) AS p
        WHERE p.pattern IS NOT NULL
    )
    SELECT o.pattern, o.max_concurrency, o.delay_ms, o.obey_robots, NULL::bigint[] FROM operator AS o
    UNION ALL
    SELECT (array_agg(c.pattern ORDER BY left(c.pattern, 2) <> '*.' DESC, length(c.pattern) DESC))[1],
           min(c.max_concurrency), max(c.delay_ms), bool_or(c.obey_robots),
           array_agg(DISTINCT c.crawl_id ORDER BY c.crawl_id)
    FROM crawl_host_policies AS c
    WHERE crawlfleet_pattern_matches(c.pattern, p_host) AND NOT EXISTS (SELECT 1 FROM operator)
    HAVING count(*) > 0
$$;

-- As in migration 0007, with the crawls' policies taken into account.
CREATE OR REPLACE FUNCTION crawlfleet_hosts_wake(p_hosts text[], p_run_at timestamptz[], p_priority smallint[])
RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    WITH woken AS (
        INSERT INTO hosts AS h (host, ready_at, top_priority, policy_pattern, max_concurrency, delay_ms, obey_robots,
                                policy_crawls)
        SELECT per_host.host, per_host.ready_at, per_host.top_priority,
               policy.pattern, policy.max_concurrency, policy.delay_ms, policy.obey_robots, policy.crawl_ids
        FROM (SELECT w.host, min(w.run_at) AS ready_at, max(w.priority) AS top_priority
              FROM unnest(p_hosts, p_run_at, p_priority) AS w(host, run_at, priority)
              WHERE w.host IS NOT NULL
              GROUP BY w.host) AS per_host
        LEFT JOIN LATERAL crawlfleet_host_policy_in_force(per_host.host) AS policy ON true
        ORDER BY per_host.host
        ON CONFLICT (host) DO UPDATE
        SET ready_at = greatest(least(coalesce(h.ready_at, 'infinity'), excluded.ready_at),
                                h.next_start_at, h.paused_until, h.robots_fetching_until),
            top_priority = greatest(h.top_priority, excluded.top_priority)
        RETURNING 1
    )
    SELECT count(*) FROM woken
$$;

-- As in migration 0007, with the crawls' policies taken into account.
CREATE OR REPLACE FUNCTION crawlfleet_hosts_apply_policy(p_pattern text) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    WITH matching AS (
        SELECT h.host FROM hosts AS h
        WHERE crawlfleet_pattern_matches(p_pattern, h.host)
        ORDER BY h.host
        FOR UPDATE
    ), changed AS (
        UPDATE hosts AS h
        SET policy_pattern = p.pattern, max_concurrency = p.max_concurrency, delay_ms = p.delay_ms,
            obey_robots = p.obey_robots, policy_crawls = p.crawl_ids,
            -- New limits may allow a lease now: let the next claim look (it recomputes).
            ready_at = CASE WHEN h.ready_at IS NOT NULL
                            THEN least(h.ready_at, greatest(now(), h.next_start_at, h.paused_until,
                                                            h.robots_fetching_until)) END,
            saturated = false
        FROM matching
        LEFT JOIN LATERAL crawlfleet_host_policy_in_force(matching.host) AS p ON true
        WHERE h.host = matching.host
        RETURNING 1
    )
    SELECT count(*) FROM changed
$$;

-- Whenever crawls' policies are added or removed (a crawl starts, ends, or is purged), the hosts
-- they cover take the policy now in force. Policy changes take turns with operators' (the same
-- advisory lock as host_policy_lock), so overlapping changes never leave a host with a stale copy.
CREATE FUNCTION crawlfleet_crawl_host_policies_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM changed_rows) THEN
        RETURN NULL;  -- statement triggers fire for no rows too: a crawl's end without policies
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('crawlfleet.host_policies'));
    PERFORM crawlfleet_hosts_apply_policy(changed.pattern)
    FROM (SELECT DISTINCT pattern FROM changed_rows ORDER BY pattern) AS changed;
    RETURN NULL;
END
$$;

CREATE TRIGGER crawl_host_policies_added AFTER INSERT ON crawl_host_policies
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crawlfleet_crawl_host_policies_changed();
CREATE TRIGGER crawl_host_policies_removed AFTER DELETE ON crawl_host_policies
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crawlfleet_crawl_host_policies_changed();

-- A crawl's policies live while it runs: finishing or cancelling it, by whichever statement,
-- removes them (and so restores its hosts' policies).
CREATE FUNCTION crawlfleet_crawl_ended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM crawl_host_policies WHERE crawl_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER crawls_ended AFTER UPDATE OF state ON crawls
    FOR EACH ROW WHEN (OLD.state = 'running' AND NEW.state <> 'running')
    EXECUTE FUNCTION crawlfleet_crawl_ended();
