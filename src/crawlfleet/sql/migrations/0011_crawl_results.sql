-- A crawl's export (ListResults with a crawl_id: result_list_crawl_after) pages through the
-- crawl's succeeded jobs in id order. With (crawl_id, state) the planner walks the primary key
-- from the cursor and filters: at a million jobs (bench/admin.py) the last page of a month-old
-- crawl read 980,000 rows to find its 39 (0.4 s), the first page of a crawl spread over the
-- table 25,000. With the id as the last key every page is one range scan from the cursor
-- (0.1 to 0.8 ms). The index replaces the old one rather than joining it: what used
-- (crawl_id, state) uses its prefix, and completing a page still maintains one index of crawls.
DROP INDEX jobs_crawl;
CREATE INDEX jobs_crawl ON jobs (crawl_id, state, id) WHERE crawl_id IS NOT NULL;
