"""Depth stays out of the way, judged by the rows each statement reads (EXPLAIN ANALYZE): a page
of finished jobs never reads the queued backlog newer than it, an export page never reads queued
jobs between results, a retention batch reads its batch, not the history kept, and the
coordinator's oldest-due gauge reads one entry of the backlog.

Pages by state are checked for order and cursor too.

Each statement runs more than five times on one connection before it is explained, so the plan
checked is the one the plan cache settled on (a generic plan may replace the custom ones)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from crawlfleet.coordinator.metrics import CoordinatorMetrics
from crawlfleet.coordinator.storage import sql
from crawlfleet.coordinator.storage.admin import AdminQueue

MAX_ID = 2**63 - 1
BACKLOG = 5000
PAGE = 50
# $1: how many, $2: state, $3: created (and finished) this long ago.
INSERT_JOBS = """
INSERT INTO jobs (kind, state, spec, run_at, created_at, attempt, max_attempts, retry_initial_ms, retry_multiplier,
                  retry_max_ms, lease_token, finished_at, result, last_error)
SELECT 'noop', $2::job_state, '\\x'::bytea, now() - $3::text::interval, now() - $3::text::interval,
       CASE WHEN $2 = 'queued' THEN 0 ELSE 1 END, 3, 1000, 2, 300000,
       CASE WHEN $2 = 'queued' THEN NULL ELSE gen_random_uuid() END,
       CASE WHEN $2 = 'queued' THEN NULL ELSE now() - $3::text::interval + interval '1 second' END,
       CASE WHEN $2 = 'succeeded' THEN '\\x'::bytea END,
       CASE WHEN $2 = 'dead' THEN 'http_5xx: 503' END
FROM generate_series(1, $1::int)
"""


def rows_read(plan: dict[str, Any], relation: str) -> int:
    """Rows the scans of `relation` produced or filtered out, over all their loops."""
    total = 0
    nodes = [plan]
    while nodes:
        node = nodes.pop()
        nodes.extend(node.get("Plans", []))
        if node.get("Relation Name") == relation:
            loops = node.get("Actual Loops", 1)
            total += round((node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * loops)
    return total


async def settled_plan(conn: asyncpg.Connection, name: str, params: Sequence[str]) -> dict[str, Any]:
    """EXPLAIN ANALYZE of the named query's prepared statement after seven runs, rolled back."""
    await conn.execute(f"PREPARE settled AS {sql.query(name)}")
    execute = f"EXECUTE settled({', '.join(params)})"
    try:
        async with conn.transaction():
            for _ in range(7):
                await conn.fetch(execute)
            text = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {execute}")
            raise _RollBack(json.loads(text)[0]["Plan"])
    except _RollBack as done:
        return done.plan
    finally:
        await conn.execute("DEALLOCATE settled")


class _RollBack(Exception):
    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan


async def test_pages_by_state_read_their_page_whatever_lies_around_them(db: asyncpg.Pool) -> None:
    await db.execute(INSERT_JOBS, 300, "succeeded", "3 hours")
    await db.execute(INSERT_JOBS, BACKLOG, "queued", "2 hours")  # older than the history after it
    await db.execute(INSERT_JOBS, 3000, "succeeded", "2 hours")
    await db.execute(INSERT_JOBS, 60, "dead", "2 hours")
    await db.execute(INSERT_JOBS, BACKLOG, "queued", "1 minute")  # and newer
    await db.execute("ANALYZE jobs")
    async with db.acquire() as conn:
        for states in ("{succeeded}", "{dead}", "{queued}", "{dead,succeeded}", "{queued,cancelled}"):
            # states, kind, url prefix, created after, created before, error type, before id, limit.
            params = [f"'{states}'", "NULL", "NULL", "NULL", "NULL", "NULL", str(MAX_ID), str(PAGE)]
            plan = await settled_plan(conn, "job_list_by_state", params)
            # A page per state asked for at most: none of the other states' rows.
            assert rows_read(plan, "jobs") <= PAGE * (states.count(",") + 1), (states, plan)


async def test_export_pages_never_read_the_newer_backlog(db: asyncpg.Pool) -> None:
    await db.execute(INSERT_JOBS, 300, "succeeded", "2 hours")
    await db.execute(INSERT_JOBS, BACKLOG, "queued", "1 minute")
    await db.execute("ANALYZE jobs")
    async with db.acquire() as conn:
        # The export's first page: succeeded jobs from the start, none of the backlog.
        export = await settled_plan(conn, "result_list_after", ["0", "1000", "NULL", "100000000", "NULL", "NULL"])
        assert rows_read(export, "jobs") <= 300, export


async def test_pages_by_state_are_newest_first_and_the_cursor_misses_nothing(db: asyncpg.Pool) -> None:
    for state, count, ago in (("succeeded", 70, "3 hours"), ("queued", 40, "2 hours"), ("dead", 30, "1 hour")):
        await db.execute(INSERT_JOBS, count, state, ago)
    await db.execute(INSERT_JOBS, 35, "queued", "1 minute")
    listing = sql.query("job_list_by_state")
    for states in (["queued"], ["succeeded", "dead"], ["queued", "succeeded", "dead", "cancelled"]):
        expected = [
            r["id"]
            for r in await db.fetch("SELECT id FROM jobs WHERE state = ANY($1::job_state[]) ORDER BY id DESC", states)
        ]
        seen: list[int] = []
        cursor = MAX_ID
        while page := await db.fetch(listing, states, None, None, None, None, None, cursor, 25):
            assert len(page) <= 25
            seen += [r["id"] for r in page]
            cursor = page[-1]["id"]
        assert seen == expected, states


async def test_a_retention_batch_reads_its_batch_not_the_history_kept(db: asyncpg.Pool) -> None:
    await db.execute(INSERT_JOBS, 2000, "succeeded", "3 days")
    await db.execute(INSERT_JOBS, 3000, "succeeded", "1 hour")
    await db.execute(INSERT_JOBS, BACKLOG, "queued", "1 minute")
    await db.execute("ANALYZE jobs")
    states = "'{succeeded,dead,cancelled,skipped}'"
    async with db.acquire() as conn:
        expired = await settled_plan(conn, "job_purge_finished", [states, "now() - interval '1 day'", "100"])
        # The batch (found; fetched and deleted by the delete), and the one row that bounds the ids.
        assert rows_read(expired, "jobs") <= 100 * 3 + 1, expired
        nothing = await settled_plan(conn, "job_purge_finished", [states, "now() - interval '7 days'", "100"])
        assert rows_read(nothing, "jobs") <= 1, nothing


async def test_the_oldest_due_gauge_reads_one_entry_of_the_backlog(db: asyncpg.Pool) -> None:
    await db.execute(INSERT_JOBS, BACKLOG, "queued", "1 hour")
    await db.execute(INSERT_JOBS, 10, "queued", "-1 hour")  # not due yet: not counted as waiting
    await db.execute("ANALYZE jobs")
    metrics = CoordinatorMetrics()
    await metrics.refresh_jobs(AdminQueue(db))
    age = metrics.registry.get_sample_value("crawlfleet_jobs_oldest_queued_age_seconds")
    assert age is not None and 3600 <= age < 3700
    async with db.acquire() as conn:
        plan = await settled_plan(conn, "queue_oldest_due", ["NULL"])
    assert rows_read(plan, "jobs") <= 1, plan
