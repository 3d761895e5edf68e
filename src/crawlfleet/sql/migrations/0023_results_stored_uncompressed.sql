-- A completed scrape's result and its page's large columns are stored without compression.
-- PostgreSQL compresses (pglz) any row larger than about 2 KB before moving its large values out
-- of line; for a product page that cost the coordinator's database 0.21-0.32 ms of CPU per page,
-- the largest single item of its share of a scrape. EXTERNAL keeps out-of-line storage (TOAST)
-- and drops the compression: a page takes more disk (36 KB instead of 15 KB measured on the
-- benchmark's pages; docs/operations.md, "Retention and size"). Rows already stored stay as
-- they are; an operator short of disk switches back with SET STORAGE EXTENDED.

ALTER TABLE jobs ALTER COLUMN result SET STORAGE EXTERNAL;

ALTER TABLE pages
    ALTER COLUMN main_text SET STORAGE EXTERNAL,
    ALTER COLUMN links SET STORAGE EXTERNAL,
    ALTER COLUMN json_ld SET STORAGE EXTERNAL,
    ALTER COLUMN headers SET STORAGE EXTERNAL;
