-- A crawl's export (ListResults with a crawl_id: result_list_crawl_after) pages through the
-- crawl's succeeded jobs in id order. On (crawl_id, state) alone each page read every succeeded
-- job of the crawl and sorted them, so an export took time quadratic in the crawl's size
-- (bench/admin.py, a million jobs); with the id as the last key a page is one range scan from the
-- cursor. It replaces the index rather than adding one: what used (crawl_id, state) uses its
-- prefix, and the claim and completion paths keep a single index of crawl jobs to maintain.
DROP INDEX jobs_crawl;
CREATE INDEX jobs_crawl ON jobs (crawl_id, state, id) WHERE crawl_id IS NOT NULL;
