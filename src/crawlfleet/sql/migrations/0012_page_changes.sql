-- Pages over time: declared fields, conditional GET and content hashes, so that a crawl can ask
-- which pages changed. A page answered 304 to the validators its job sent is a row that says so
-- (not_modified, nothing extracted); every page fetched in full has the SHA-256 of its decoded
-- body, and it changed when that differs from the hash of the same URL's fetch before it.

ALTER TABLE pages
    ADD COLUMN not_modified boolean NOT NULL DEFAULT false
        CONSTRAINT pages_not_modified_is_304 CHECK (NOT not_modified OR status_code = 304),
    -- NULL for a 304, and for pages stored before content hashes.
    ADD COLUMN content_sha256 text CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
    -- The declared fields' values: {"name": ["value", ...]} (jobs.result keeps them too).
    ADD COLUMN fields jsonb NOT NULL DEFAULT '{}';

-- A URL's fetches in time (and URL prefixes, byte-wise): what changed since a time, and the fetch
-- before each one to compare its hash with. 304s are left out: they change nothing.
CREATE INDEX pages_url_fetched_at ON pages (url text_pattern_ops, fetched_at) WHERE NOT not_modified;
