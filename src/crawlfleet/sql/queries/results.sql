-- Named queries on scrape results; see jobs.sql for the format. Run inside the transaction of
-- job_complete_if_leased_many, for the jobs it completed.

-- name: page_insert_many
-- One page per scrape job; a job of another kind gets none and is missing from what it returns,
-- so the caller can refuse the completion (a noop job has no target URL for pages.url).
INSERT INTO pages (job_id, url, final_url, status_code, content_type, charset, rendered_with, title,
                   meta_description, canonical_url, language, main_text, body_bytes, redirects, links,
                   image_urls, json_ld, open_graph, headers, not_modified, content_sha256, fields, fetched_at)
SELECT t.job_id, j.target_url, t.final_url, t.status_code, t.content_type, t.charset, t.rendered_with,
       t.title, t.meta_description, t.canonical_url, t.language, t.main_text, t.body_bytes, t.redirects,
       t.links, t.image_urls, t.json_ld, t.open_graph, t.headers, t.not_modified, t.content_sha256, t.fields,
       coalesce($22::timestamptz, now())
FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::jsonb[], $14::jsonb[],
            $15::jsonb[], $16::jsonb[], $17::jsonb[], $18::jsonb[], $19::boolean[], $20::text[], $21::jsonb[])
     AS t(job_id, final_url, status_code, content_type, charset, rendered_with, title, meta_description,
          canonical_url, language, main_text, body_bytes, redirects, links, image_urls, json_ld, open_graph,
          headers, not_modified, content_sha256, fields)
JOIN jobs AS j ON j.id = t.job_id AND j.kind = 'scrape'
RETURNING job_id;

-- name: image_lock_stored
-- Of the given images, those stored, each locked FOR KEY SHARE until the transaction ends. A purge
-- locks an image FOR UPDATE before it checks that no page refers to it, so it cannot remove an
-- image this transaction refers to; and an image a purge is removing is waited for, then not
-- returned (the Complete stores it again, or refuses a reference to it). Hash order, as the purge
-- locks them, so the two never deadlock.
SELECT sha256 FROM images WHERE sha256 = ANY($1::text[]) ORDER BY sha256 FOR KEY SHARE;

-- name: thumbnail_find_many
-- The stored thumbnails of the given images (locked by image_lock_stored: a purge removes
-- thumbnails with their image only).
SELECT sha256, image_sha256 FROM thumbnails WHERE image_sha256 = ANY($1::text[]);

-- name: image_find_stored
-- The stored images among the given hashes, with their thumbnails' metadata (not their bytes),
-- for FindStoredImages: a worker then reports them by reference instead of processing them.
SELECT i.sha256, i.format, i.width, i.height, i.byte_size, i.perceptual_hash,
       coalesce(array_agg(t.sha256 ORDER BY t.max_side, t.sha256) FILTER (WHERE t.sha256 IS NOT NULL),
                '{}') AS thumbnail_sha256s,
       coalesce(array_agg(t.max_side::bigint ORDER BY t.max_side, t.sha256) FILTER (WHERE t.sha256 IS NOT NULL),
                '{}') AS thumbnail_max_sides,
       coalesce(array_agg(t.width::bigint ORDER BY t.max_side, t.sha256) FILTER (WHERE t.sha256 IS NOT NULL),
                '{}') AS thumbnail_widths,
       coalesce(array_agg(t.height::bigint ORDER BY t.max_side, t.sha256) FILTER (WHERE t.sha256 IS NOT NULL),
                '{}') AS thumbnail_heights,
       coalesce(array_agg(t.format ORDER BY t.max_side, t.sha256) FILTER (WHERE t.sha256 IS NOT NULL),
                '{}') AS thumbnail_formats
FROM images AS i
LEFT JOIN thumbnails AS t ON t.image_sha256 = i.sha256
WHERE i.sha256 = ANY($1::text[])
GROUP BY i.sha256;

-- name: image_insert_many
-- Image metadata, once per content hash.
INSERT INTO images (sha256, format, width, height, byte_size, perceptual_hash, first_seen_at)
SELECT t.*, coalesce($7::timestamptz, now())
FROM unnest($1::text[], $2::text[], $3::integer[], $4::integer[], $5::bigint[], $6::text[])
     AS t(sha256, format, width, height, byte_size, perceptual_hash)
ON CONFLICT (sha256) DO NOTHING;

-- name: thumbnail_insert_many
-- Thumbnail bytes, once per image and content hash.
INSERT INTO thumbnails (sha256, image_sha256, max_side, width, height, format, data)
SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::integer[], $5::integer[], $6::text[],
                     $7::bytea[])
              AS t(sha256, image_sha256, max_side, width, height, format, data)
ON CONFLICT (image_sha256, sha256) DO NOTHING;

-- name: page_image_insert_many
INSERT INTO page_images (job_id, position, url, image_sha256, error_type, error_message)
SELECT * FROM unnest($1::bigint[], $2::integer[], $3::text[], $4::text[], $5::text[], $6::text[])
              AS t(job_id, position, url, image_sha256, error_type, error_message);

-- name: thumbnail_get
-- A thumbnail, if the caller may see it: $2 is the owner the caller is confined to (NULL: any),
-- who sees the thumbnails of images on pages of its own jobs only. The same bytes may be stored
-- for several images: any one the caller may see.
SELECT t.sha256, t.format, t.width, t.height, t.data
FROM thumbnails AS t
WHERE t.sha256 = $1
  AND ($2::text IS NULL OR EXISTS (
          SELECT 1 FROM page_images AS pi JOIN jobs AS j ON j.id = pi.job_id
          WHERE pi.image_sha256 = t.image_sha256 AND j.owner = $2::text))
LIMIT 1;

-- name: result_list_after
-- Succeeded jobs with their results, in id order from a cursor, for export: up to $2 rows, and no
-- more than about $4 bytes of them (result, spec and URL plus a per-row allowance), but always the
-- first row. The byte sizes come from the stored lengths: rows left out are never read from TOAST.
-- window_rows is how many rows the count limit allowed, so the caller sees a page cut by bytes.
-- $5 is the owner the caller is confined to (NULL: every owner's results); $6 a target URL prefix
-- as a LIKE pattern (NULL: any URL).
WITH window_rows AS (
    SELECT id, kind, target_url, finished_at, result, spec
    FROM jobs
    -- finished_at IS NOT NULL (always so when succeeded) lets the page be a range of
    -- jobs_finished from the cursor: queued and leased jobs between succeeded ones are not read.
    WHERE state = 'succeeded' AND finished_at IS NOT NULL AND id > $1 AND ($3::text IS NULL OR kind = $3)
      AND ($5::text IS NULL OR owner = $5::text)
      AND ($6::text IS NULL OR target_url LIKE $6 || '%')
    ORDER BY id
    LIMIT $2
), sized AS (
    SELECT id, kind, target_url, finished_at, result, spec,
           sum(octet_length(result) + octet_length(spec) + coalesce(octet_length(target_url), 0) + 64)
               OVER (ORDER BY id) AS running_bytes,
           row_number() OVER (ORDER BY id) AS position,
           count(*) OVER () AS window_rows
    FROM window_rows
)
SELECT id, kind, target_url, finished_at, result, spec, window_rows
FROM sized
WHERE position = 1 OR running_bytes <= $4
ORDER BY id;

-- name: result_list_changed_after
-- As result_list_after, for the pages that changed since $6: fetched in full since then (a 304
-- changes nothing) with another content hash than the full fetch of the same URL for the same
-- owner before them, or none before them (an owner's pages are compared with its own only, so
-- what others fetched shows through no answer). A page without a hash (stored before hashes, or
-- by an older worker) counts as changed: better reported twice than missed. The pages under the
-- prefix since $6 and the fetch before each are found in pages_url_fetched_at.
WITH window_rows AS (
    SELECT j.id, j.kind, j.target_url, j.finished_at, j.result, j.spec
    FROM pages AS p
    JOIN jobs AS j ON j.id = p.job_id
    WHERE NOT p.not_modified AND p.fetched_at >= $6 AND p.job_id > $1
      AND ($7::text IS NULL OR p.url LIKE $7 || '%')
      AND j.state = 'succeeded' AND ($3::text IS NULL OR j.kind = $3)
      AND ($5::text IS NULL OR j.owner = $5::text)
      AND (p.content_sha256 IS NULL OR p.content_sha256 IS DISTINCT FROM (
              SELECT before.content_sha256
              FROM pages AS before
              JOIN jobs AS before_job ON before_job.id = before.job_id
              WHERE before.url = p.url AND NOT before.not_modified
                AND (before.fetched_at, before.job_id) < (p.fetched_at, p.job_id)
                AND before_job.owner IS NOT DISTINCT FROM j.owner
              ORDER BY before.fetched_at DESC, before.job_id DESC
              LIMIT 1))
    ORDER BY p.job_id
    LIMIT $2
), sized AS (
    SELECT id, kind, target_url, finished_at, result, spec,
           sum(octet_length(result) + octet_length(spec) + coalesce(octet_length(target_url), 0) + 64)
               OVER (ORDER BY id) AS running_bytes,
           row_number() OVER (ORDER BY id) AS position,
           count(*) OVER () AS window_rows
    FROM window_rows
)
SELECT id, kind, target_url, finished_at, result, spec, window_rows
FROM sized
WHERE position = 1 OR running_bytes <= $4
ORDER BY id;

-- name: result_list_crawl_after
-- result_list_after for the pages of one crawl ($6): the same page, cut the same way. A statement
-- of its own rather than an optional filter, so that every plan of it, the generic one included,
-- walks the crawl's range of jobs_crawl (crawl_id, state, id) from the cursor instead of the
-- whole table's succeeded jobs. $5 is the owner the caller is confined to (NULL: any): a crawl's
-- jobs carry the owner of the crawl, so another producer's crawl has no results for the caller.
WITH window_rows AS (
    SELECT id, kind, target_url, finished_at, result, spec
    FROM jobs
    WHERE crawl_id = $6::bigint AND state = 'succeeded' AND id > $1 AND ($3::text IS NULL OR kind = $3)
      AND ($5::text IS NULL OR owner = $5::text)
    ORDER BY id
    LIMIT $2
), sized AS (
    SELECT id, kind, target_url, finished_at, result, spec,
           sum(octet_length(result) + octet_length(spec) + coalesce(octet_length(target_url), 0) + 64)
               OVER (ORDER BY id) AS running_bytes,
           row_number() OVER (ORDER BY id) AS position,
           count(*) OVER () AS window_rows
    FROM window_rows
)
SELECT id, kind, target_url, finished_at, result, spec, window_rows
FROM sized
WHERE position = 1 OR running_bytes <= $4
ORDER BY id;
