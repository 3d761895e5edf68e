"""A queue at depth, written in set-based SQL: a backlog of queued jobs and the history a
week-long crawl leaves behind, for the benches that compare a deep table with an empty one.

- Queued: hostless noop jobs, due now, after every job already queued in lease order (their
  run_at is the fill's clock), so a drain leases the jobs enqueued before the fill first and
  then walks into the backlog.
- Finished: scrape jobs of one crawl that ran over the 7 days before the fill, on --hosts
  hosts: 95% succeeded (one attempt, 5% two) with a page each, 5% dead after 3 attempts with
  their errors; each attempt has its job_attempts row. Their hosts have rows with no queued work.

Rows are written INSERT ... SELECT from generate_series in chunks (no per-row round trips), the
job counts are given what the queue's statements would have recorded, and the tables are
VACUUM ANALYZEd as autovacuum would have done by the time anyone looked.

History pages are left half full (HISTORY_FILLFACTOR), as a running queue leaves them: a job's row
is written three times (queued, leased, finished) and an attempt's twice (running, closed), and
VACUUM frees the older versions, so a page of history ends up between a third full (every version
on the job's own page) and the table's fillfactor (every later version elsewhere). Written packed
to the tables' own fillfactor instead, every page kept room for exactly one more row, and the free
space map then put the live work written after the fill one row per old page: a running crawl's
2,000 queued jobs on 2,000 pages (84 on an empty table), each claimed job a page read, a dirtied
page and a full-page image in the WAL. Figures taken before this are on that packed layout.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import asyncpg

from crawlfleet.v1 import crawls_pb2, jobs_pb2

CHUNK = 500_000
HISTORY_FILLFACTOR = 50  # percent: see the module's doc
HISTORY_HOSTS = 1000
HISTORY_DAYS = 7

# $1..$2: row numbers of the chunk; $3: id offset; $4: rows in all; $5: the fill's now; $6: crawl;
# $7: scrape spec; $8: page result; $9: hosts. Older rows first (ids in time order).
FILL_FINISHED_JOBS = """
INSERT INTO jobs (id, kind, state, priority, spec, target_url, dedupe_key, run_at, created_at, attempt,
                  max_attempts, retry_initial_ms, retry_multiplier, retry_max_ms, lease_token, leased_by,
                  leased_at, finished_at, last_error, result, host, crawl_id, depth)
OVERRIDING SYSTEM VALUE
SELECT $3::bigint + g, 'scrape', state, 0, $7::bytea, url, 'url:' || url, created_at, created_at,
       CASE WHEN state = 'dead' THEN 3 WHEN r < 0.05 THEN 2 ELSE 1 END,
       3, 1000, 2, 300000, gen_random_uuid(), 'bench-worker-' || (g % 40),
       created_at + interval '5 seconds', created_at + interval '7 seconds',
       CASE WHEN state = 'dead' THEN 'http_5xx: 503 Service Unavailable' END,
       CASE WHEN state = 'succeeded' THEN $8::bytea END,
       host, $6::bigint, (g % 4)::int
FROM (
    SELECT g, r, host, 'https://' || host || '/page/' || g AS url,
           CASE WHEN r >= 0.95 THEN 'dead' ELSE 'succeeded' END::job_state AS state,
           $5::timestamptz - interval '10 minutes'
               - interval '1 day' * $10::float8 * (($4::bigint - g)::float8 / $4::bigint) AS created_at
    FROM (SELECT g, random() AS r, 'site' || lpad((g % $9::int)::text, 4, '0') || '.example' AS host
          FROM generate_series($1::bigint, $2::bigint) AS g) AS draws
) AS rows
"""

# The attempts of the jobs in an id range: the last one carries the job's lease token.
FILL_FINISHED_ATTEMPTS = """
INSERT INTO job_attempts (job_id, attempt, lease_token, worker_id, target_url, started_at, finished_at, outcome,
                          error_type, error_message)
SELECT j.id, a, CASE WHEN a = j.attempt THEN j.lease_token ELSE gen_random_uuid() END, j.leased_by, j.target_url,
       j.leased_at - (j.attempt - a) * interval '4 seconds',
       j.leased_at - (j.attempt - a) * interval '4 seconds' + interval '2 seconds',
       CASE WHEN a = j.attempt AND j.state = 'succeeded' THEN 'succeeded' ELSE 'failed' END,
       CASE WHEN a < j.attempt OR j.state = 'dead' THEN 'http_5xx' END,
       CASE WHEN a < j.attempt OR j.state = 'dead' THEN '503 Service Unavailable' END
FROM jobs AS j CROSS JOIN LATERAL generate_series(1, j.attempt) AS a
WHERE j.id BETWEEN $1 AND $2
"""

# The pages of the succeeded jobs in an id range.
FILL_PAGES = """
INSERT INTO pages (job_id, url, final_url, status_code, content_type, charset, rendered_with, title,
                   meta_description, canonical_url, language, main_text, body_bytes, redirects, links,
                   image_urls, json_ld, open_graph, headers, fetched_at, content_sha256)
SELECT j.id, j.target_url, j.target_url, 200, 'text/html', 'utf-8', 'http', 'Page ' || j.id, '', '', 'en',
       'Product ' || j.id || ' of ' || j.host || '. In stock, ships in two days; reviews below.',
       48213, '[]', '[]', '[]', '[]', '{}', '{}', j.finished_at - interval '1 second',
       md5(j.id::text) || md5(j.target_url)
FROM jobs AS j
WHERE j.id BETWEEN $1 AND $2 AND j.state = 'succeeded'
"""

# Hostless noop jobs due at the fill's clock ($4), in lease order after every job queued before.
FILL_QUEUED = """
INSERT INTO jobs (id, kind, state, priority, spec, run_at, created_at, max_attempts, retry_initial_ms,
                  retry_multiplier, retry_max_ms)
OVERRIDING SYSTEM VALUE
SELECT $3::bigint + g, 'noop', 'queued', 0, $5::bytea, $4::timestamptz, $4::timestamptz, 5, 1000, 2, 300000
FROM generate_series($1::bigint, $2::bigint) AS g
"""

FILL_CRAWL = """
INSERT INTO crawls (spec, state, max_depth, max_pages, max_pages_per_host, max_query_variants, priority,
                    max_attempts, retry_initial_ms, retry_multiplier, retry_max_ms, pages_enqueued, created_at,
                    starts_at, finished_at)
VALUES ($1, 'finished', 3, 100000000, 100000000, 100, 0, 3, 1000, 2, 300000, $2::integer,
        $3::timestamptz - interval '1 day' * $4::float8 - interval '10 minutes',
        $3::timestamptz - interval '1 day' * $4::float8 - interval '10 minutes', $3::timestamptz)
RETURNING id
"""

FILL_HOSTS = """
INSERT INTO hosts (host, last_lease_at, leases_started)
SELECT 'site' || lpad(h::text, 4, '0') || '.example', $2::timestamptz, $3::bigint / $1::int
FROM generate_series(0, $1::int - 1) AS h
ON CONFLICT (host) DO NOTHING
"""

# What the queue's statements would have recorded for rows written behind their back.
COUNT_DELTAS = """
INSERT INTO job_count_deltas (kind, state, delta)
SELECT kind, state, count(*) FROM jobs WHERE id > $1 GROUP BY kind, state
"""


@dataclass(frozen=True, kw_only=True)
class DepthFill:
    queued: int
    finished: int
    fill_s: float
    vacuum_s: float
    crawl_id: int | None
    first_id: int
    last_id: int

    @staticmethod
    def empty_figures() -> dict[str, object]:
        return {"depth_queued": 0, "depth_finished": 0, "depth_fill_s": 0.0, "depth_vacuum_analyze_s": 0.0}

    def figures(self) -> dict[str, object]:
        return {
            "depth_queued": self.queued,
            "depth_finished": self.finished,
            "depth_fill_s": round(self.fill_s, 1),
            "depth_vacuum_analyze_s": round(self.vacuum_s, 1),
        }


def _blobs() -> tuple[bytes, bytes, bytes, bytes]:
    scrape = jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url="https://site0000.example/page/1"))
    page = jobs_pb2.ScrapeResult(
        final_url="https://site0000.example/page/1",
        status_code=200,
        title="Page 1",
        content_type="text/html",
        body_bytes=48_213,
        language="en",
        charset="utf-8",
        rendered_with=jobs_pb2.RENDER_MODE_HTTP,
    )
    crawl = crawls_pb2.CrawlSpec(seeds=["https://site0000.example/"], max_depth=3)
    return (
        scrape.SerializeToString(),
        jobs_pb2.JobResult(scrape=page).SerializeToString(),
        jobs_pb2.JobSpec(noop=jobs_pb2.NoopSpec()).SerializeToString(),
        crawl.SerializeToString(),
    )


async def _chunks(
    db: asyncpg.Connection, statement: str, rows: int, say: Callable[[str], None] | None, label: str, *args: object
) -> None:
    started = time.perf_counter()
    for lo in range(1, rows + 1, CHUNK):
        hi = min(rows, lo + CHUNK - 1)
        await db.execute(statement, lo, hi, *args, timeout=None)
        if say is not None:
            say(f"  {label}: {hi:,} of {rows:,} ({hi / (time.perf_counter() - started):,.0f}/s)")


@contextlib.asynccontextmanager
async def history_layout(db: asyncpg.Connection, tables: tuple[str, ...]) -> AsyncIterator[None]:
    """Rows written inside fill their pages to HISTORY_FILLFACTOR; each table's own storage
    options are put back after."""
    saved = {
        table: await db.fetchval("SELECT reloptions FROM pg_class WHERE oid = $1::regclass", table) for table in tables
    }
    for table in tables:
        await db.execute(f"ALTER TABLE {table} SET (fillfactor = {HISTORY_FILLFACTOR})")
    try:
        yield
    finally:
        for table, options in saved.items():
            await db.execute(f"ALTER TABLE {table} RESET (fillfactor)")
            if options:
                await db.execute(f"ALTER TABLE {table} SET ({', '.join(options)})")


async def _fill_history(
    db: asyncpg.Connection,
    finished: int,
    offset: int,
    now: object,
    history_days: float,
    say: Callable[[str], None] | None,
) -> int:
    """The week-long crawl's `finished` jobs with their attempts and pages, ids after `offset`;
    returns the crawl's id."""
    scrape_spec, page_result, _, crawl_spec = _blobs()
    first_id = offset + 1
    crawl_id = int(await db.fetchval(FILL_CRAWL, crawl_spec, min(finished, 100_000_000), now, history_days))
    await _chunks(
        db,
        FILL_FINISHED_JOBS,
        finished,
        say,
        "finished jobs",
        offset,
        finished,
        now,
        crawl_id,
        scrape_spec,
        page_result,
        HISTORY_HOSTS,
        float(history_days),
    )
    for statement, label in ((FILL_FINISHED_ATTEMPTS, "their attempts"), (FILL_PAGES, "their pages")):
        step_started = time.perf_counter()
        for lo in range(first_id, first_id + finished, CHUNK):
            await db.execute(statement, lo, min(first_id + finished - 1, lo + CHUNK - 1), timeout=None)
        if say is not None:
            say(f"  {label}: {time.perf_counter() - step_started:.1f}s")
    await db.execute(FILL_HOSTS, HISTORY_HOSTS, now, finished)
    return crawl_id


async def fill(
    db: asyncpg.Connection,
    *,
    queued: int,
    finished: int,
    say: Callable[[str], None] | None = None,
    history_days: float = HISTORY_DAYS,
) -> DepthFill:
    """Write `finished` history rows (over the `history_days` before now) then `queued` backlog rows
    after the table's current ids, then VACUUM ANALYZE. Nothing else may write jobs meanwhile (the
    ids are taken in one block)."""
    noop_spec = _blobs()[2]
    now: object = await db.fetchval("SELECT now()")
    first_id = int(await db.fetchval("SELECT coalesce(max(id), 0) FROM jobs")) + 1
    offset = first_id - 1
    started = time.perf_counter()
    crawl_id: int | None = None
    if finished:
        async with history_layout(db, ("jobs", "job_attempts")):
            crawl_id = await _fill_history(db, finished, offset, now, history_days, say)
        offset += finished
    if queued:
        await _chunks(db, FILL_QUEUED, queued, say, "queued jobs", offset, now, noop_spec)
        offset += queued
    await db.execute("SELECT setval(pg_get_serial_sequence('jobs', 'id'), $1)", max(offset, 1))
    await db.execute(COUNT_DELTAS, first_id - 1)
    fill_s = time.perf_counter() - started
    started = time.perf_counter()
    await db.execute("VACUUM ANALYZE", timeout=None)
    # A week-old history is on disk: without this the checkpoint that writes out the fill's
    # gigabytes runs during the measured phase.
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        await db.execute("CHECKPOINT", timeout=None)
    return DepthFill(
        queued=queued,
        finished=finished,
        fill_s=fill_s,
        vacuum_s=time.perf_counter() - started,
        crawl_id=crawl_id,
        first_id=first_id,
        last_id=offset,
    )


def parse_depth(text: str) -> tuple[int, int]:
    """`Q,F`: queued and finished rows (e.g. 1000000,10000000)."""
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"--depth takes QUEUED,FINISHED (two non-negative integers), not {text!r}")
    return int(parts[0]), int(parts[1])
