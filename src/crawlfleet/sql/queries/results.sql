-- Named queries on scrape results; see jobs.sql for the format. Run inside the transaction of
-- job_complete_if_leased_many, for the jobs it completed.

-- name: page_insert_many
-- One page per scrape job; a job of another kind gets none and is missing from what it returns,
-- so the caller can refuse the completion (a noop job has no target URL for pages.url).
INSERT INTO pages (job_id, url, final_url, status_code, content_type, charset, rendered_with, title,
                   meta_description, canonical_url, language, main_text, body_bytes, redirects, links,
                   image_urls, json_ld, open_graph, headers, fetched_at)
SELECT t.job_id, j.target_url, t.final_url, t.status_code, t.content_type, t.charset, t.rendered_with,
       t.title, t.meta_description, t.canonical_url, t.language, t.main_text, t.body_bytes, t.redirects,
       t.links, t.image_urls, t.json_ld, t.open_graph, t.headers, coalesce($19::timestamptz, now())
FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::jsonb[], $14::jsonb[],
            $15::jsonb[], $16::jsonb[], $17::jsonb[], $18::jsonb[])
     AS t(job_id, final_url, status_code, content_type, charset, rendered_with, title, meta_description,
          canonical_url, language, main_text, body_bytes, redirects, links, image_urls, json_ld, open_graph,
          headers)
JOIN jobs AS j ON j.id = t.job_id AND j.kind = 'scrape'
RETURNING job_id;

-- name: image_insert_many
-- Image metadata, once per content hash.
INSERT INTO images (sha256, format, width, height, byte_size, perceptual_hash, first_seen_at)
SELECT t.*, coalesce($7::timestamptz, now())
FROM unnest($1::text[], $2::text[], $3::integer[], $4::integer[], $5::bigint[], $6::text[])
     AS t(sha256, format, width, height, byte_size, perceptual_hash)
ON CONFLICT (sha256) DO NOTHING;

-- name: thumbnail_insert_many
-- Thumbnail bytes, once per content hash.
INSERT INTO thumbnails (sha256, image_sha256, max_side, width, height, format, data)
SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::integer[], $5::integer[], $6::text[],
                     $7::bytea[])
              AS t(sha256, image_sha256, max_side, width, height, format, data)
ON CONFLICT (sha256) DO NOTHING;

-- name: page_image_insert_many
INSERT INTO page_images (job_id, position, url, image_sha256, error_type, error_message)
SELECT * FROM unnest($1::bigint[], $2::integer[], $3::text[], $4::text[], $5::text[], $6::text[])
              AS t(job_id, position, url, image_sha256, error_type, error_message);

-- name: thumbnail_get
-- A thumbnail, if the caller may see it: $2 is the owner the caller is confined to (NULL: any),
-- who sees the thumbnails of images on pages of its own jobs only.
SELECT t.sha256, t.format, t.width, t.height, t.data
FROM thumbnails AS t
WHERE t.sha256 = $1
  AND ($2::text IS NULL OR EXISTS (
          SELECT 1 FROM page_images AS pi JOIN jobs AS j ON j.id = pi.job_id
          WHERE pi.image_sha256 = t.image_sha256 AND j.owner = $2::text));

-- name: result_list_after
-- Succeeded jobs with their results, in id order from a cursor, for export: up to $2 rows, and no
-- more than about $4 bytes of them (result and URL plus a per-row allowance), but always the first
-- row. The byte sizes come from the stored lengths: rows left out are never read from TOAST.
-- window_rows is how many rows the count limit allowed, so the caller sees a page cut by bytes.
-- $5 is the owner the caller is confined to (NULL: every owner's results).
WITH window_rows AS (
    SELECT id, kind, target_url, finished_at, result
    FROM jobs
    WHERE state = 'succeeded' AND id > $1 AND ($3::text IS NULL OR kind = $3)
      AND ($5::text IS NULL OR owner = $5::text)
    ORDER BY id
    LIMIT $2
), sized AS (
    SELECT id, kind, target_url, finished_at, result,
           sum(octet_length(result) + coalesce(octet_length(target_url), 0) + 64) OVER (ORDER BY id) AS running_bytes,
           row_number() OVER (ORDER BY id) AS position,
           count(*) OVER () AS window_rows
    FROM window_rows
)
SELECT id, kind, target_url, finished_at, result, window_rows
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
    SELECT id, kind, target_url, finished_at, result
    FROM jobs
    WHERE crawl_id = $6::bigint AND state = 'succeeded' AND id > $1 AND ($3::text IS NULL OR kind = $3)
      AND ($5::text IS NULL OR owner = $5::text)
    ORDER BY id
    LIMIT $2
), sized AS (
    SELECT id, kind, target_url, finished_at, result,
           sum(octet_length(result) + coalesce(octet_length(target_url), 0) + 64) OVER (ORDER BY id) AS running_bytes,
           row_number() OVER (ORDER BY id) AS position,
           count(*) OVER () AS window_rows
    FROM window_rows
)
SELECT id, kind, target_url, finished_at, result, window_rows
FROM sized
WHERE position = 1 OR running_bytes <= $4
ORDER BY id;
