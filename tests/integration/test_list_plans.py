"""ListJobs filters use their indexes however the statement ran before: each call is planned for
its own filter values, so a URL prefix or a creation window reads its own jobs, not the history.

ListJobs without a state is one prepared statement with optional filters (`$n IS NULL OR ...`).
After five runs PostgreSQL may settle on one generic plan for it: a listing by kind (no index;
its custom plans walk the history and look dear) makes the generic plan look cheap, and from then
on a URL prefix or a creation window also walks the primary key back over every newer job."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from crawlfleet.coordinator.storage import database, sql
from crawlfleet.coordinator.storage.admin import AdminQueue, JobFilterValues
from tests.integration.test_history_plans import MAX_ID, rows_read

RARE = 20
HISTORY = 20_000
# $1: how many, $2: URL prefix, $3: created (and finished) this long ago.
INSERT_JOBS = """
INSERT INTO jobs (kind, state, spec, target_url, run_at, created_at, attempt, max_attempts, retry_initial_ms,
                  retry_multiplier, retry_max_ms, lease_token, finished_at, result)
SELECT 'noop', 'succeeded', '\\x'::bytea, $2 || n, now() - $3::text::interval, now() - $3::text::interval,
       1, 3, 1000, 2, 300000, gen_random_uuid(), now() - $3::text::interval + interval '1 second', '\\x'::bytea
FROM generate_series(1, $1::int) AS n
"""
# kind, url prefix, created after, created before, error type, before id, limit.
BY_KIND = ["'scrape'", "NULL", "NULL", "NULL", "NULL", str(MAX_ID), "50"]
BY_PREFIX = ["NULL", "'https://rare.example/'", "NULL", "NULL", "NULL", str(MAX_ID), "50"]
BY_WINDOW = ["NULL", "NULL", "now() - interval '4 hours'", "now() - interval '2 hours'", "NULL", str(MAX_ID), "50"]


async def fill(db: asyncpg.Pool) -> None:
    """A few old jobs of a rare site behind a long, newer history of another."""
    await db.execute(INSERT_JOBS, RARE, "https://rare.example/p/", "3 hours")
    await db.execute(INSERT_JOBS, HISTORY, "https://common.example/p/", "1 hour")
    await db.execute("ANALYZE jobs")


async def plan_after_listings_by_kind(conn: asyncpg.Connection, params: Sequence[str]) -> dict[str, Any]:
    """EXPLAIN ANALYZE of job_list_filtered with `params`, after seven listings by kind, all in one
    transaction that plans each call."""
    await conn.execute(f"PREPARE listing AS {sql.query('job_list_filtered')}")
    try:
        async with conn.transaction():
            await conn.execute(sql.query("plan_each_call"))
            for _ in range(7):
                await conn.fetch(f"EXECUTE listing({', '.join(BY_KIND)})")
            text = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE listing({', '.join(params)})")
            plan: dict[str, Any] = json.loads(text)[0]["Plan"]
        return plan
    finally:
        await conn.execute("DEALLOCATE listing")


async def test_a_prefix_or_window_page_reads_its_own_jobs_after_listings_by_kind(db: asyncpg.Pool) -> None:
    await fill(db)
    async with db.acquire() as conn:
        for params in (BY_PREFIX, BY_WINDOW):
            plan = await plan_after_listings_by_kind(conn, params)
            assert rows_read(plan, "jobs") <= RARE * 2, plan


async def test_list_jobs_never_settles_on_a_generic_plan(db_dsn: str) -> None:
    pool = await database.create_pool(db_dsn, size=1)  # one connection: one prepared statement
    try:
        await fill(pool)
        admin = AdminQueue(pool)
        now = dt.datetime.now(dt.UTC)
        window = JobFilterValues(created_after=now - dt.timedelta(hours=4), created_before=now - dt.timedelta(hours=2))
        for _ in range(7):
            await admin.list_jobs(JobFilterValues(kind="scrape"), before_id=MAX_ID, limit=50)
        for flt in (JobFilterValues(url_prefix="https://rare.example/"), window):
            assert len(await admin.list_jobs(flt, before_id=MAX_ID, limit=50)) == RARE
        plans = await pool.fetch(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE '%FROM jobs%' AND statement NOT LIKE '%pg_prepared_statements%'"
        )
    finally:
        await pool.close()
    assert [tuple(p) for p in plans] == [(0, 9)]
