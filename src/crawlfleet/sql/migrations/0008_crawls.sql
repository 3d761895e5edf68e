-- Crawls: seeds, then the links of every stored page, followed within a scope and limits.
-- Discovery runs in the transaction that completes a page (crawlfleet_discover), so a link is
-- never lost to a crash, and crawl_urls (one row per URL per crawl) makes each URL enter a
-- crawl once, whichever worker found it first.

CREATE TYPE crawl_state AS ENUM ('running', 'finished', 'cancelled');

CREATE TABLE crawls (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The principal that started it (NULL without auth); producers see only their own.
    owner           text,
    state           crawl_state NOT NULL DEFAULT 'running',
    -- The serialized crawlfleet.v1.CrawlSpec, as validated (limits filled in).
    spec            bytea       NOT NULL,
    max_depth       integer     NOT NULL CHECK (max_depth >= 0),
    max_pages       integer     NOT NULL CHECK (max_pages >= 1),
    max_pages_per_host integer  NOT NULL CHECK (max_pages_per_host >= 1),
    max_query_variants integer  NOT NULL CHECK (max_query_variants >= 1),
    -- What every job of the crawl gets (from the spec, the coordinator's defaults filled in).
    priority        smallint    NOT NULL,
    max_attempts    integer     NOT NULL,
    retry_initial_ms integer    NOT NULL,
    retry_multiplier real       NOT NULL,
    retry_max_ms    integer     NOT NULL,
    -- URLs accepted into the crawl; discovery holds the row's lock while it adds to it, so the
    -- limit holds exactly across every coordinator.
    pages_enqueued  integer     NOT NULL DEFAULT 0,
    out_of_scope    bigint      NOT NULL DEFAULT 0,
    over_limit      bigint      NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    -- When its pages are first due (a refresh round may start later than it is made).
    starts_at       timestamptz NOT NULL,
    finished_at     timestamptz,
    -- The crawl this one refreshes: its pages are fetched with conditional GETs.
    refresh_of      bigint      REFERENCES crawls (id) ON DELETE SET NULL,
    CONSTRAINT crawls_pages_within_limit CHECK (pages_enqueued <= max_pages),
    CONSTRAINT crawls_finished_iff_ended CHECK ((state = 'running') = (finished_at IS NULL))
);
CREATE INDEX crawls_running ON crawls (id) WHERE state = 'running';
-- A crawl is refreshed at most once: racing finishers and repeated RefreshCrawl calls make one.
CREATE UNIQUE INDEX crawls_refresh_of ON crawls (refresh_of) WHERE refresh_of IS NOT NULL;

-- The crawl's seen set: each URL at most once per crawl, with the depth it was found at.
CREATE TABLE crawl_urls (
    crawl_id       bigint      NOT NULL REFERENCES crawls (id) ON DELETE CASCADE,
    url            text        NOT NULL,
    depth          integer     NOT NULL CHECK (depth >= 0),
    host           text        NOT NULL,
    -- The URL without its query: distinct queries per path are capped (calendar traps).
    path_key       text        NOT NULL,
    job_id         bigint,
    discovered_at  timestamptz NOT NULL,
    PRIMARY KEY (crawl_id, url)
);
-- Per-host and per-path counts of a crawl, kept by discovery (it holds the crawl's lock).
CREATE TABLE crawl_host_counts (
    crawl_id  bigint  NOT NULL REFERENCES crawls (id) ON DELETE CASCADE,
    host      text    NOT NULL,
    pages     integer NOT NULL,
    PRIMARY KEY (crawl_id, host)
);
CREATE TABLE crawl_path_counts (
    crawl_id  bigint  NOT NULL REFERENCES crawls (id) ON DELETE CASCADE,
    path_key  text    NOT NULL,
    variants  integer NOT NULL,
    PRIMARY KEY (crawl_id, path_key)
);

ALTER TABLE jobs ADD COLUMN IF NOT EXISTS crawl_id bigint REFERENCES crawls (id) ON DELETE SET NULL;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS depth integer CHECK (depth >= 0);
-- A crawl's jobs (progress, cancel, whether it is finished).
CREATE INDEX jobs_crawl ON jobs (crawl_id, state) WHERE crawl_id IS NOT NULL;
-- A refresh looks up each URL's previous version in the crawl it refreshes.
CREATE INDEX jobs_crawl_url ON jobs (crawl_id, target_url) WHERE crawl_id IS NOT NULL;

-- Adds pages to a running crawl and enqueues a scrape job for each URL it did not have, within
-- its limits: pages in all (exact), pages per host, queries per path. The URLs come in order of
-- preference (the page's link order): the first ones within the limits win. Two steps, like the
-- claim: lock the crawl's row (discoveries of one crawl take turns), then decide in a new
-- statement, whose snapshot sees everything the previous holder of the lock committed.
-- p_out_of_scope and p_too_deep: links the caller already left out (added to the counts).
-- Returns how many URLs were enqueued, were in the crawl already, and were over a limit.
CREATE FUNCTION crawlfleet_discover(
    p_crawl bigint, p_urls text[], p_hosts text[], p_path_keys text[], p_depths integer[], p_specs bytea[],
    p_out_of_scope integer, p_too_deep integer, p_now timestamptz
) RETURNS TABLE (enqueued integer, known integer, over_limit integer)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := coalesce(p_now, now());
    v_crawl crawls;
    v_enqueued integer := 0;
    v_known integer := 0;
    v_fresh integer := 0;
BEGIN
    SELECT * INTO v_crawl FROM crawls WHERE crawls.id = p_crawl FOR UPDATE;
    IF NOT FOUND OR v_crawl.state <> 'running' THEN
        RETURN QUERY SELECT 0, 0, 0;
        RETURN;
    END IF;

    WITH offered AS (
        SELECT t.*, row_number() OVER (PARTITION BY t.url ORDER BY t.ord) AS copy
        FROM unnest(p_urls, p_hosts, p_path_keys, p_depths, p_specs)
             WITH ORDINALITY AS t(url, host, path_key, depth, spec, ord)
    ), distinct_offered AS (
        SELECT o.*,
               EXISTS (SELECT 1 FROM crawl_urls AS c WHERE c.crawl_id = p_crawl AND c.url = o.url) AS known
        FROM offered AS o
        WHERE o.copy = 1
    ), path_ranked AS (
        -- Each new URL's place among its path's queries, the crawl's so far included.
        SELECT f.*,
               row_number() OVER (PARTITION BY f.path_key ORDER BY f.ord)
                   + coalesce((SELECT pc.variants FROM crawl_path_counts AS pc
                               WHERE pc.crawl_id = p_crawl AND pc.path_key = f.path_key), 0) AS path_nth
        FROM distinct_offered AS f
        WHERE NOT f.known
    ), ranked AS (
        -- Then its place among its host's pages, counting only the URLs within their path's limit:
        -- a trap's refused queries are no pages of the host, and do not crowd out its other links.
        -- (A path is on one host, so a URL the host's limit refuses leaves its path's count alone.)
        SELECT p.*,
               row_number() OVER (PARTITION BY p.host ORDER BY p.ord)
                   + coalesce((SELECT hc.pages FROM crawl_host_counts AS hc
                               WHERE hc.crawl_id = p_crawl AND hc.host = p.host), 0) AS host_nth
        FROM path_ranked AS p
        WHERE p.path_nth <= v_crawl.max_query_variants
    ), chosen AS (
        SELECT r.* FROM ranked AS r
        WHERE r.host_nth <= v_crawl.max_pages_per_host
        ORDER BY r.ord
        LIMIT v_crawl.max_pages - v_crawl.pages_enqueued
    ), jobs_made AS (
        INSERT INTO jobs (kind, priority, spec, target_url, dedupe_key, run_at, created_at, max_attempts,
                          retry_initial_ms, retry_multiplier, retry_max_ms, owner, host, crawl_id, depth)
        SELECT 'scrape', v_crawl.priority, c.spec, c.url, 'crawl:' || p_crawl || ':' || c.url,
               greatest(v_now, v_crawl.starts_at), v_now, v_crawl.max_attempts, v_crawl.retry_initial_ms, v_crawl.retry_multiplier,
               v_crawl.retry_max_ms,
               v_crawl.owner, c.host, p_crawl, c.depth
        FROM chosen AS c
        ORDER BY c.ord
        ON CONFLICT (dedupe_key) WHERE state IN ('queued', 'leased') AND dedupe_key IS NOT NULL DO NOTHING
        RETURNING jobs.id, jobs.target_url, jobs.host, jobs.run_at, jobs.priority
    ), seen AS (
        -- Chosen URLs whose job already existed live (a crawl's seed enqueued twice) join too.
        INSERT INTO crawl_urls (crawl_id, url, depth, host, path_key, job_id, discovered_at)
        SELECT p_crawl, c.url, c.depth, c.host, c.path_key, m.id, v_now
        FROM chosen AS c LEFT JOIN jobs_made AS m ON m.target_url = c.url
    ), counted AS (
        INSERT INTO job_count_deltas (kind, state, delta)
        SELECT 'scrape', 'queued', count(*) FROM jobs_made HAVING count(*) > 0
    ), per_host AS (
        INSERT INTO crawl_host_counts AS hc (crawl_id, host, pages)
        SELECT p_crawl, c.host, count(*) FROM chosen AS c GROUP BY c.host
        ON CONFLICT (crawl_id, host) DO UPDATE SET pages = hc.pages + excluded.pages
    ), per_path AS (
        INSERT INTO crawl_path_counts AS pc (crawl_id, path_key, variants)
        SELECT p_crawl, c.path_key, count(*) FROM chosen AS c GROUP BY c.path_key
        ON CONFLICT (crawl_id, path_key) DO UPDATE SET variants = pc.variants + excluded.variants
    ), woken AS (
        SELECT crawlfleet_hosts_wake(array_agg(m.host), array_agg(m.run_at), array_agg(m.priority)) AS hosts
        FROM jobs_made AS m
    )
    SELECT (SELECT count(*) FROM chosen), (SELECT count(*) FROM distinct_offered WHERE known),
           (SELECT count(*) FROM distinct_offered WHERE NOT known)
    INTO v_enqueued, v_known, v_fresh
    FROM woken;

    UPDATE crawls
    SET pages_enqueued = crawls.pages_enqueued + v_enqueued,
        out_of_scope = crawls.out_of_scope + p_out_of_scope,
        over_limit = crawls.over_limit + (v_fresh - v_enqueued) + p_too_deep
    WHERE crawls.id = p_crawl;
    IF v_enqueued > 0 THEN
        PERFORM pg_notify('crawlfleet_jobs', v_enqueued::text);
    END IF;
    RETURN QUERY SELECT v_enqueued, v_known, v_fresh - v_enqueued + p_too_deep;
END
$$;
