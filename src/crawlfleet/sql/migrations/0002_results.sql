-- Scrape results: pages, their images, and image and thumbnail data stored once per content hash.
-- jobs.result keeps the whole crawlfleet.v1.JobResult (without thumbnail bytes) as the record of
-- the job; these tables are its relational projection for SQL and the store of thumbnail bytes.
-- All of it is written in the transaction that completes the job.

CREATE TABLE pages (
    job_id            bigint      PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    url               text        NOT NULL,
    final_url         text        NOT NULL,
    status_code       integer     NOT NULL CHECK (status_code BETWEEN 100 AND 599),
    content_type      text        NOT NULL,
    charset           text        NOT NULL,
    rendered_with     text        NOT NULL CHECK (rendered_with IN ('http', 'browser')),
    title             text        NOT NULL,
    meta_description  text        NOT NULL,
    canonical_url     text        NOT NULL,
    language          text        NOT NULL,
    main_text         text        NOT NULL,
    body_bytes        bigint      NOT NULL CHECK (body_bytes >= 0),
    redirects         jsonb       NOT NULL,  -- [{"url": ..., "status_code": ...}]
    links             jsonb       NOT NULL,  -- [{"url": ..., "text": ..., "same_host": ...}]
    image_urls        jsonb       NOT NULL,
    json_ld           jsonb       NOT NULL,  -- [<each JSON-LD document>]
    open_graph        jsonb       NOT NULL,
    headers           jsonb       NOT NULL,
    fetched_at        timestamptz NOT NULL
);
CREATE INDEX pages_final_url ON pages (final_url);

-- One row per distinct image content (SHA-256 of the downloaded bytes).
CREATE TABLE images (
    sha256           text        PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    format           text        NOT NULL CHECK (format IN ('JPEG', 'PNG', 'WEBP', 'GIF')),
    width            integer     NOT NULL CHECK (width > 0),
    height           integer     NOT NULL CHECK (height > 0),
    byte_size        bigint      NOT NULL CHECK (byte_size > 0),
    perceptual_hash  text        NOT NULL CHECK (perceptual_hash ~ '^[0-9a-f]{16}$'),
    first_seen_at    timestamptz NOT NULL
);
CREATE INDEX images_perceptual_hash ON images (perceptual_hash);

-- Thumbnail bytes, content-addressed: identical thumbnails are stored once.
CREATE TABLE thumbnails (
    sha256        text    PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    image_sha256  text    NOT NULL REFERENCES images (sha256),
    max_side      integer NOT NULL CHECK (max_side > 0),
    width         integer NOT NULL CHECK (width > 0),
    height        integer NOT NULL CHECK (height > 0),
    format        text    NOT NULL CHECK (format IN ('WEBP', 'JPEG', 'PNG')),
    data          bytea   NOT NULL,
    CONSTRAINT thumbnails_size_matches CHECK (octet_length(data) > 0)
);
CREATE INDEX thumbnails_image ON thumbnails (image_sha256, max_side);

-- The images of a page in page order: processed (image_sha256) or failed (error_type).
CREATE TABLE page_images (
    job_id         bigint  NOT NULL REFERENCES pages (job_id) ON DELETE CASCADE,
    position       integer NOT NULL CHECK (position >= 0),
    url            text    NOT NULL,
    image_sha256   text    REFERENCES images (sha256),
    error_type     text,
    error_message  text,
    PRIMARY KEY (job_id, position),
    CONSTRAINT page_images_processed_or_failed CHECK (image_sha256 IS NOT NULL OR error_type IS NOT NULL)
);
CREATE INDEX page_images_image ON page_images (image_sha256) WHERE image_sha256 IS NOT NULL;
