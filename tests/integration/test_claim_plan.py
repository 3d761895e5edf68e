"""The claim's plans on freshly loaded tables. The claim is a function (crawlfleet_claim), so the
plans that matter are those of the statements inside it: auto_explain logs each one (nested
statements included) to the session, where a log listener collects them.

- Hostless jobs: after a bulk enqueue (analyzed by the coordinator, before any autoanalyze) the
  claim walks the jobs_available index in lease order instead of scanning and sorting the backlog.
- Host-bound jobs, thousands of hosts queued behind one host's throttled backlog (which the
  statistics see alone): the claim finds ready hosts through hosts_ready, and each host's jobs
  and leases in flight through jobs_host_queue and jobs_host_leased; it never scans the jobs
  table.

Each claim runs more than five times on one connection, so the plans checked include the generic
plans that PL/pgSQL's plan cache may switch to after five custom ones.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg

from crawlfleet.coordinator.politeness import Politeness
from crawlfleet.coordinator.storage import statements as q
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from tests.conftest import RunningCoordinator
from tests.helpers import eventually, noop

BACKLOG = 20_000
BATCH = 10_000
HOSTS = 5_000
JOBS_PER_HOST = 2
# One host holds a backlog that dwarfs the others and skews the statistics (one host name for
# nearly every row), as a large crawl of one site does; its policy throttles it.
BACKLOG_HOST = "backlog.plan.test"
SLOTS = 200
# Past the five custom plans after which the plan cache may settle on a generic plan.
CLAIMS = 7


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan tree."""
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(plan_nodes(child))
    return nodes


def _scans_unlimited(node: dict[str, Any], relation: str) -> bool:
    """Whether a scan of `relation` lies below `node` with no Limit between them."""
    return any(
        child.get("Relation Name") == relation or (child["Node Type"] != "Limit" and _scans_unlimited(child, relation))
        for child in node.get("Plans", [])
    )


class Statement:
    """One statement an auto_explain log message reports: its text and its plan's nodes."""

    def __init__(self, logged: dict[str, Any]) -> None:
        self.text: str = logged["Query Text"]
        self.nodes = plan_nodes(logged["Plan"])

    def scans(self, relation: str) -> list[tuple[str, str | None]]:
        """(node type, index name) of every scan of `relation`."""
        return [(n["Node Type"], n.get("Index Name")) for n in self.nodes if n.get("Relation Name") == relation]

    def sorts_of(self, relation: str) -> list[dict[str, Any]]:
        """Sort nodes over the rows of a scan of `relation` (a sort of the few rows past a Limit is not one)."""
        return [
            node
            for node in self.nodes
            if node["Node Type"] in ("Sort", "Incremental Sort") and _scans_unlimited(node, relation)
        ]

    def __repr__(self) -> str:
        return f"Statement({self.text.strip()[:60]!r}, jobs: {self.scans('jobs')}, hosts: {self.scans('hosts')})"


async def claim_statements(conn: asyncpg.Connection, politeness: Politeness) -> list[Statement]:
    """Run the claim as a worker's Lease does (200 slots, any kind) with auto_explain on; the
    statements it ran, nested ones first, the call itself last."""
    logged: list[asyncpg.PostgresLogMessage] = []

    def collect(_conn: object, message: asyncpg.PostgresLogMessage) -> None:
        logged.append(message)

    conn.add_log_listener(collect)
    try:
        await conn.execute(
            "LOAD 'auto_explain';"
            " SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on;"
            " SET auto_explain.log_format = json; SET client_min_messages = log"
        )
        await conn.fetch(
            q.JOB_LEASE_AVAILABLE.sql,
            "w1",
            SLOTS,
            [],
            30_000,
            None,
            None,
            politeness.host_concurrency,
            round(politeness.host_delay_seconds * 1000),
            politeness.obey_robots,
            round(politeness.saturated_recheck_seconds * 1000),
        )
        await conn.execute("RESET client_min_messages; SET auto_explain.log_min_duration = -1")
        await asyncio.sleep(0)  # listeners run on the event loop: let the last ones in
    finally:
        conn.remove_log_listener(collect)
    plans = [m.message.split("plan:\n", 1)[1] for m in logged if "plan:\n" in m.message]
    return [Statement(json.loads(plan)) for plan in plans]


def inside(statements: list[Statement], words: str) -> list[Statement]:
    """The statements of the claim whose text holds `words`."""
    return [s for s in statements if words in s.text]


async def analyzed(db: asyncpg.Pool) -> bool:
    query = "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'jobs'"
    return bool(await db.fetchval(query))


async def test_hostless_claim_walks_the_available_index_after_a_bulk_enqueue(
    coord: RunningCoordinator, db: asyncpg.Pool
) -> None:
    for _ in range(BACKLOG // BATCH):
        await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[noop() for _ in range(BATCH)]))
    # The coordinator analyzes in the background after a large enqueue (autoanalyze would take a minute).
    await eventually(lambda: analyzed(db), what="the coordinator to analyze the freshly loaded jobs table")

    async with db.acquire() as conn:
        for _ in range(CLAIMS):
            statements = await claim_statements(conn, Politeness())
            (hostless,) = inside(statements, "WITH candidates AS")
            # Candidates come from an ordered walk of jobs_available: no bitmap scan and sort of the backlog.
            scans = hostless.scans("jobs")
            assert ("Index Scan", "jobs_available") in scans, statements
            assert not [scan for scan in scans if scan[0].startswith("Bitmap")], statements
            assert not hostless.sorts_of("jobs"), statements
            # So does the probe that says whether there is a hostless job to claim at all.
            for probe in inside(statements, "j.host IS NULL"):
                assert ("Index Scan", "jobs_available") in probe.scans("jobs") or (
                    "Index Only Scan",
                    "jobs_available",
                ) in probe.scans("jobs"), statements
            assert not [s for s in statements if ("Seq Scan", None) in s.scans("jobs")], statements


async def test_host_claim_reaches_hosts_and_their_jobs_through_their_indexes(
    coord: RunningCoordinator, db: asyncpg.Pool
) -> None:
    await db.execute(
        "INSERT INTO host_policies (pattern, max_concurrency, delay_ms, updated_at) VALUES ($1, 1, 3600000, now())",
        BACKLOG_HOST,
    )
    for start in range(0, BACKLOG, BATCH):
        specs = [
            jobs_pb2.JobSpec(noop=jobs_pb2.NoopSpec(url=f"http://{BACKLOG_HOST}/{n}"))
            for n in range(start, start + BATCH)
        ]
        await coord.queue.Enqueue(pb.EnqueueRequest(jobs=specs))
    # The statistics the claims plan with are those of the backlog alone.
    await eventually(lambda: analyzed(db), what="the coordinator to analyze the freshly loaded jobs table")
    urls = [f"http://h{n % HOSTS}.plan.test/{n}" for n in range(HOSTS * JOBS_PER_HOST)]
    for start in range(0, len(urls), BATCH):
        specs = [jobs_pb2.JobSpec(noop=jobs_pb2.NoopSpec(url=url)) for url in urls[start : start + BATCH]]
        await coord.queue.Enqueue(pb.EnqueueRequest(jobs=specs))
    assert await db.fetchval("SELECT count(*) FROM hosts WHERE ready_at IS NOT NULL") == HOSTS + 1

    leased = 0
    async with db.acquire() as conn:
        for _ in range(CLAIMS):
            statements = await claim_statements(conn, Politeness())
            # Step 1: the ready hosts, in claim order, from hosts_ready (no scan and sort of all hosts).
            (ready,) = inside(statements, "FOR UPDATE SKIP LOCKED) AS ready")
            assert ("Index Scan", "hosts_ready") in ready.scans("hosts"), statements
            assert not ready.sorts_of("hosts"), statements
            # Step 2: each host's queue and leases in flight from their own indexes.
            (served,) = inside(statements, "WITH locked AS")
            jobs_indexes = {index for _, index in served.scans("jobs")}
            assert {"jobs_host_queue", "jobs_host_leased"} <= jobs_indexes, statements
            # Nor of hosts (the host rows a claim moves are found through their key).
            for table in ("jobs", "hosts"):
                assert not [s for s in statements if ("Seq Scan", None) in s.scans(table)], statements
            leased += SLOTS
    # Every claim served a full batch of hosts, each host once (its delay holds its second job),
    # the backlog's host among them once.
    assert await db.fetchval("SELECT count(*) FROM jobs WHERE state = 'leased'") == leased
    assert await db.fetchval("SELECT count(DISTINCT host) FROM jobs WHERE state = 'leased'") == leased
    assert await db.fetchval("SELECT count(*) FROM jobs WHERE state = 'leased' AND host = $1", BACKLOG_HOST) == 1
