-- Named queries of crawls (coordinator/storage/crawls.py); see jobs.sql for the format.

-- name: crawl_insert
-- A new running crawl. Params: owner, spec, max depth, max pages, max pages per host, max query
-- variants per path, then the priority and retry columns of its jobs, now.
INSERT INTO crawls (owner, spec, max_depth, max_pages, max_pages_per_host, max_query_variants, priority,
                    max_attempts, retry_initial_ms, retry_multiplier, retry_max_ms, created_at, starts_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, coalesce($12::timestamptz, now()),
        coalesce($12::timestamptz, now()))
RETURNING id;

-- name: crawl_host_policies_insert
-- A crawl's politeness as host policies of its own, one per pattern; a trigger (migration 0013)
-- copies the policies now in force into the hosts they cover, and another removes them when the
-- crawl ends. Params: crawl id, patterns, max concurrency, delay in ms, obey robots.txt.
INSERT INTO crawl_host_policies (crawl_id, pattern, max_concurrency, delay_ms, obey_robots)
SELECT $1, t.pattern, $3::integer, $4::integer, $5::boolean FROM unnest($2::text[]) AS t(pattern)
ON CONFLICT (crawl_id, pattern) DO NOTHING;

-- name: crawl_insert_refresh
-- A new running crawl that refreshes crawl $1 (same owner, spec and limits), its pages due at $2;
-- nothing if $1 is running or already refreshed (crawls_refresh_of). Params: crawl id, starts at, now.
INSERT INTO crawls (owner, spec, max_depth, max_pages, max_pages_per_host, max_query_variants, priority,
                    max_attempts, retry_initial_ms, retry_multiplier, retry_max_ms, created_at, starts_at,
                    refresh_of)
SELECT owner, spec, max_depth, max_pages, max_pages_per_host, max_query_variants, priority, max_attempts,
       retry_initial_ms, retry_multiplier, retry_max_ms, coalesce($3::timestamptz, now()),
       coalesce($2::timestamptz, $3::timestamptz, now()), id
FROM crawls
WHERE id = $1 AND state <> 'running'
ON CONFLICT (refresh_of) WHERE refresh_of IS NOT NULL DO NOTHING
RETURNING id;

-- name: crawl_previous_validators
-- The ETag and Last-Modified of the latest version of each URL that the crawls a refresh follows
-- on (crawl $1 and those it refreshed in turn) stored, for conditional GETs. Params: crawl id
-- (the refreshed one), urls.
WITH RECURSIVE chain AS (
    SELECT id, refresh_of FROM crawls WHERE id = $1
    UNION ALL
    SELECT c.id, c.refresh_of FROM crawls AS c JOIN chain ON c.id = chain.refresh_of
)
SELECT DISTINCT ON (j.target_url) j.target_url AS url,
       coalesce(p.headers->>'etag', '') AS etag, coalesce(p.headers->>'last-modified', '') AS last_modified
FROM chain
JOIN jobs AS j ON j.crawl_id = chain.id AND j.target_url = ANY($2::text[]) AND j.state = 'succeeded'
JOIN pages AS p ON p.job_id = j.id
WHERE p.status_code <> 304
ORDER BY j.target_url, p.fetched_at DESC;

-- name: crawl_previous_result
-- The latest stored result of a URL that was fetched in full (not a 304) in the crawls a refresh
-- follows on: an unchanged page's links are taken from it. Params: crawl id (the refreshed one), url.
WITH RECURSIVE chain AS (
    SELECT id, refresh_of FROM crawls WHERE id = $1
    UNION ALL
    SELECT c.id, c.refresh_of FROM crawls AS c JOIN chain ON c.id = chain.refresh_of
)
SELECT j.result
FROM chain
JOIN jobs AS j ON j.crawl_id = chain.id AND j.target_url = $2 AND j.state = 'succeeded'
JOIN pages AS p ON p.job_id = j.id
WHERE p.status_code <> 304
ORDER BY p.fetched_at DESC
LIMIT 1;

-- name: crawl_discover
-- Offers pages to a crawl (crawlfleet_discover, migration 0008). Params: crawl id; the pages'
-- urls, hosts, path keys, depths and job specs (parallel arrays); links left out before (out of
-- scope, too deep); now.
SELECT enqueued, known, over_limit
FROM crawlfleet_discover($1, $2::text[], $3::text[], $4::text[], $5::integer[], $6::bytea[],
                         $7::integer, $8::integer, $9::timestamptz);

-- name: crawl_page_depth
-- The depth of a crawl's page now: its URL's in the crawl's seen set, lowered since the page was
-- enqueued if a shorter path to it was found (crawl_urls_depth_lower). Takes the crawl's row lock
-- first, as discovery does, so no lowering runs between this and the page's discovery. Nothing
-- when the URL is not in the set (a sitemap job). Params: crawl id, job id.
WITH crawl AS (
    SELECT id FROM crawls WHERE id = $1 FOR UPDATE
)
SELECT c.depth
FROM crawl
JOIN jobs AS j ON j.id = $2
JOIN crawl_urls AS c ON c.crawl_id = crawl.id AND c.url = j.target_url;

-- name: crawl_urls_depth_lower
-- URLs a crawl knew at a greater depth, found again at $3, take the shorter depth: the depth of a
-- page is its shortest known distance from a seed when its links are offered. Their jobs still
-- queued take it too, for the crawl's report, unless a claim holds them right now (the seen set
-- is what discovery reads). Runs after crawl_discover, under the crawl's row lock. Params: crawl
-- id, urls, depth.
WITH lowered AS (
    UPDATE crawl_urls AS c
    SET depth = $3
    WHERE c.crawl_id = $1 AND c.url = ANY($2::text[]) AND c.depth > $3
    RETURNING c.job_id
), queued AS (
    SELECT j.id FROM jobs AS j
    WHERE j.id IN (SELECT job_id FROM lowered) AND j.state = 'queued'
    ORDER BY j.id
    FOR UPDATE OF j SKIP LOCKED
)
UPDATE jobs AS j
SET depth = $3
FROM queued
WHERE j.id = queued.id;

-- name: crawl_url_seen_by_redirect
-- A page's final URL after redirects joins its running crawl as seen, fetched by the job that
-- was redirected there, so a link to it is not fetched again. A URL the crawl has already (a link
-- to it came first) stays as it is; it counts against no limit: no job is made for it. It holds
-- the crawl's row lock as discovery does (crawlfleet_discover), so the two take turns on the
-- crawl's URLs. Params: crawl id, url, depth, host, path key, job id, now.
WITH crawl AS (
    SELECT id FROM crawls WHERE id = $1 AND state = 'running' FOR UPDATE
)
INSERT INTO crawl_urls (crawl_id, url, depth, host, path_key, job_id, discovered_at)
SELECT crawl.id, $2, $3, $4, $5, $6, coalesce($7::timestamptz, now())
FROM crawl
ON CONFLICT (crawl_id, url) DO NOTHING;

-- name: crawl_spec_get
-- What discovery needs of a crawl: its spec and the crawl it refreshes (immutable once started).
SELECT spec, refresh_of FROM crawls WHERE id = $1;

-- name: crawl_get
-- The crawl, if the caller may see it ($2: the owner it is confined to; NULL: any).
SELECT id, state::text AS state, spec, created_at, finished_at, pages_enqueued, out_of_scope, over_limit,
       refresh_of, starts_at, (SELECT r.id FROM crawls AS r WHERE r.refresh_of = crawls.id) AS refreshed_by
FROM crawls
WHERE id = $1 AND ($2::text IS NULL OR owner = $2::text);

-- name: crawl_job_counts
-- The jobs of crawls $1 by depth and state: their kept counts (crawl_job_counts, migration 0018)
-- plus the deltas not folded yet, exact and independent of how many jobs the crawls have.
SELECT crawl_id, depth, state::text AS state, sum(n)::bigint AS jobs
FROM (SELECT crawl_id, depth, state, count AS n FROM crawl_job_counts WHERE crawl_id = ANY($1::bigint[])
      UNION ALL
      SELECT crawl_id, depth, state, delta FROM crawl_job_count_deltas WHERE crawl_id = ANY($1::bigint[])) AS parts
GROUP BY crawl_id, depth, state
HAVING sum(n) <> 0;

-- name: crawl_job_count_fold
-- Folds the pending per-crawl deltas into crawl_job_counts (as job_count_fold does for the
-- queue's), and drops the counts that reached zero. Coordinators may run it concurrently.
WITH folded AS (
    DELETE FROM crawl_job_count_deltas RETURNING crawl_id, depth, state, error_type, delta
), summed AS (
    SELECT crawl_id, depth, state, error_type, sum(delta) AS n FROM folded GROUP BY 1, 2, 3, 4
), upserted AS (
    INSERT INTO crawl_job_counts AS c (crawl_id, depth, state, error_type, count)
    SELECT crawl_id, depth, state, error_type, n FROM summed WHERE n <> 0
    ON CONFLICT (crawl_id, depth, state, error_type) DO UPDATE SET count = c.count + excluded.count
    RETURNING c.crawl_id, c.depth, c.state, c.error_type, c.count
)
DELETE FROM crawl_job_counts AS c
USING upserted AS u
WHERE (c.crawl_id, c.depth, c.state, c.error_type) = (u.crawl_id, u.depth, u.state, u.error_type) AND u.count = 0;

-- name: crawl_job_count_lock
-- Holds off every writer's per-crawl deltas until the transaction ends (see job_count_lock).
LOCK TABLE crawl_job_count_deltas IN SHARE ROW EXCLUSIVE MODE;

-- name: crawl_job_count_clear
-- Drops the kept per-crawl counts, before crawl_job_count_rebuild; run under crawl_job_count_lock.
WITH cleared_deltas AS (
    DELETE FROM crawl_job_count_deltas
)
DELETE FROM crawl_job_counts;

-- name: crawl_job_count_rebuild
-- Recounts every crawl's jobs into crawl_job_counts: the repair after jobs were written behind
-- the triggers' back (triggers disabled). Run under crawl_job_count_lock, after
-- crawl_job_count_clear.
INSERT INTO crawl_job_counts (crawl_id, depth, state, error_type, count)
SELECT crawl_id, coalesce(depth, 0), state, crawlfleet_job_error_type(state, last_error), count(*)
FROM jobs WHERE crawl_id IS NOT NULL GROUP BY 1, 2, 3, 4;

-- name: crawl_error_counts
-- Why the crawl's jobs ended without a page, most frequent first: the kept counts by error type
-- (crawl_job_counts, with the deltas not folded yet), where counting the crawl's dead, cancelled
-- and skipped jobs took 5 s for a crawl of ten million jobs.
SELECT error_type, sum(n)::bigint AS jobs
FROM (SELECT error_type, count AS n FROM crawl_job_counts WHERE crawl_id = $1 AND error_type <> ''
      UNION ALL
      SELECT error_type, delta FROM crawl_job_count_deltas WHERE crawl_id = $1 AND error_type <> '') AS parts
GROUP BY error_type
HAVING sum(n) <> 0
ORDER BY 2 DESC, 1
LIMIT 20;

-- name: crawl_recent_pages
-- Pages the crawl stored in the minute before $2 (its rate): its jobs that succeeded in that
-- minute, a range of jobs_crawl_succeeded (crawl_id, finished_at). A job's success and the close
-- of its last attempt share one time, so this is the attempts that succeeded in that minute.
-- Params: crawl id, now.
SELECT count(*) AS pages
FROM jobs
WHERE crawl_id = $1 AND state = 'succeeded'
  AND finished_at > coalesce($2::timestamptz, now()) - interval '1 minute';

-- name: crawl_list
-- Crawls with ids below $1 (NULL: from the newest), newest first, up to $2, of owner $3 (NULL: any).
SELECT id, state::text AS state, spec, created_at, finished_at, pages_enqueued, out_of_scope, over_limit,
       refresh_of, starts_at, (SELECT r.id FROM crawls AS r WHERE r.refresh_of = crawls.id) AS refreshed_by
FROM crawls
WHERE ($1::bigint IS NULL OR id < $1) AND ($3::text IS NULL OR owner = $3::text)
ORDER BY id DESC
LIMIT $2;

-- name: crawl_cancel
-- Stops a running crawl: no more discovery (it checks the state under the crawl's row lock).
-- Returns the crawl's state after, nothing for a missing crawl. Its own transaction, before
-- crawl_cancel_jobs: a Complete locks its jobs and then the crawl's row (discovery), so holding
-- the crawl's row while locking its jobs would deadlock with it. Once this has committed, no job
-- joins the crawl. Params: crawl id, owner (NULL: any), now.
WITH target AS (
    SELECT id, state FROM crawls WHERE id = $1 AND ($2::text IS NULL OR owner = $2::text)
), stopped AS (
    UPDATE crawls AS c
    SET state = 'cancelled', finished_at = coalesce($3::timestamptz, now())
    FROM target
    WHERE c.id = target.id AND c.state = 'running'
    RETURNING c.id, c.state
)
SELECT id, coalesce((SELECT state::text FROM stopped), (SELECT state::text FROM target)) AS state FROM target;

-- name: crawl_cancel_jobs
-- The live jobs of a cancelled crawl (crawl_cancel committed): queued ones are cancelled at once,
-- leased ones asked to stop (they end at their next heartbeat). Takes job row locks only, in id
-- order, without the crawl's. Calling it again finds what is left (none, or jobs left behind by a
-- coordinator that stopped between the two statements). Params: crawl id, now.
WITH live AS (
    SELECT j.id, j.kind, j.state FROM jobs AS j
    WHERE j.crawl_id = $1 AND (j.state = 'queued' OR (j.state = 'leased' AND NOT j.cancel_requested))
      AND EXISTS (SELECT 1 FROM crawls AS c WHERE c.id = $1 AND c.state = 'cancelled')
    ORDER BY j.id
    FOR UPDATE OF j
), changed AS (
    UPDATE jobs AS j
    SET state = CASE WHEN live.state = 'queued' THEN 'cancelled'::job_state ELSE j.state END,
        finished_at = CASE WHEN live.state = 'queued' THEN coalesce($2::timestamptz, now()) ELSE j.finished_at END,
        cancel_requested = j.cancel_requested OR live.state = 'leased'
    FROM live
    WHERE j.id = live.id
    RETURNING j.id, j.kind, live.state AS was
), counted AS (
    INSERT INTO job_count_deltas (kind, state, delta)
    SELECT kind, moves.state, moves.n
    FROM (SELECT kind, count(*) AS c FROM changed WHERE was = 'queued' GROUP BY kind) AS per_kind,
         LATERAL (VALUES ('queued'::job_state, -c), ('cancelled'::job_state, c)) AS moves(state, n)
)
SELECT (SELECT count(*) FROM changed WHERE was = 'queued') AS cancelled_jobs,
       (SELECT count(*) FROM changed WHERE was = 'leased') AS stopping_jobs,
       (SELECT count(pg_notify('crawlfleet_jobs_finished', '')) FROM (SELECT 1 FROM changed LIMIT 1) AS any_changed
         WHERE EXISTS (SELECT 1 FROM job_watchers WHERE expires_at > now())) AS finished_notified;

-- name: crawl_finish_idle
-- Running crawls without a queued or leased job are finished (the coordinators' background task);
-- returns them with their specs (a crawl with a refresh interval starts its next round).
UPDATE crawls AS c
SET state = 'finished', finished_at = coalesce($1::timestamptz, now())
WHERE c.state = 'running'
  AND NOT EXISTS (SELECT 1 FROM jobs AS j WHERE j.crawl_id = c.id AND j.state IN ('queued', 'leased'))
RETURNING c.id, c.spec, c.finished_at;

-- name: crawl_sitemap_jobs_insert
-- The sitemap jobs of a crawl started with sitemaps: one per site of its seeds, at depth 0.
-- Params: crawl id, their urls, hosts and specs (parallel arrays), now.
WITH crawl AS (
    SELECT * FROM crawls WHERE id = $1
), made AS (
    INSERT INTO jobs (kind, priority, spec, target_url, dedupe_key, run_at, created_at, max_attempts,
                      retry_initial_ms, retry_multiplier, retry_max_ms, owner, host, crawl_id, depth)
    SELECT 'sitemap', crawl.priority, t.spec, t.url, 'crawl:' || $1 || ':sitemap:' || t.url,
           coalesce($5::timestamptz, now()), coalesce($5::timestamptz, now()), crawl.max_attempts,
           crawl.retry_initial_ms, crawl.retry_multiplier, crawl.retry_max_ms, crawl.owner, t.host, $1, 0
    FROM crawl, unnest($2::text[], $3::text[], $4::bytea[]) AS t(url, host, spec)
    ON CONFLICT (dedupe_key) WHERE state IN ('queued', 'leased') AND dedupe_key IS NOT NULL DO NOTHING
    RETURNING id, host, run_at, priority
), counted AS (
    INSERT INTO job_count_deltas (kind, state, delta)
    SELECT 'sitemap', 'queued', count(*) FROM made HAVING count(*) > 0
), woken AS (
    SELECT crawlfleet_hosts_wake(array_agg(host), array_agg(run_at), array_agg(priority)) AS hosts FROM made
)
SELECT count(*) AS jobs, (SELECT hosts FROM woken) AS hosts_woken FROM made;

-- name: crawl_purge_ended
-- Retention of crawls: an ended crawl that ended before $1 and has no job left (retention removed
-- them all) goes, with its seen set (crawl_urls), its per-path and per-host counts and its kept
-- job counts. Up to $2 seen URLs and per-path counts per call, so a crawl of millions of URLs
-- goes over several short transactions; the crawl's row goes (its per-host counts by cascade,
-- one per host) with the call that leaves none of them. One
-- crawl per call, skipping one another call holds. Returns the crawl, the seen URLs deleted and
-- whether the crawl itself went. Params: ended before, limit.
WITH doomed AS (
    SELECT c.id FROM crawls AS c
    WHERE c.state <> 'running' AND c.finished_at < $1
      AND NOT EXISTS (SELECT 1 FROM jobs AS j WHERE j.crawl_id = c.id)
    ORDER BY c.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), urls AS (
    DELETE FROM crawl_urls AS u
    WHERE u.crawl_id = (SELECT id FROM doomed)
      AND u.url = ANY(ARRAY(SELECT url FROM crawl_urls WHERE crawl_id = (SELECT id FROM doomed) LIMIT $2))
    RETURNING 1
), paths AS (
    DELETE FROM crawl_path_counts AS p
    WHERE p.crawl_id = (SELECT id FROM doomed)
      AND p.path_key = ANY(ARRAY(SELECT path_key FROM crawl_path_counts WHERE crawl_id = (SELECT id FROM doomed) LIMIT $2))
    RETURNING 1
), last_batch AS (
    -- An ended crawl gains no rows: a batch short of the limit took the last of them.
    SELECT id FROM doomed
    WHERE (SELECT count(*) FROM urls) < $2 AND (SELECT count(*) FROM paths) < $2
), kept_counts AS (
    DELETE FROM crawl_job_counts WHERE crawl_id = (SELECT id FROM last_batch)
), kept_deltas AS (
    DELETE FROM crawl_job_count_deltas WHERE crawl_id = (SELECT id FROM last_batch)
), gone AS (
    DELETE FROM crawls WHERE id = (SELECT id FROM last_batch) RETURNING id
)
SELECT (SELECT id FROM doomed) AS crawl_id, (SELECT count(*) FROM urls) AS deleted_urls,
       EXISTS (SELECT 1 FROM gone) AS deleted;
