"""The claim's plan on a freshly loaded table: after a bulk enqueue (before any autoanalyze) it
walks the jobs_available index in lease order instead of scanning and sorting the backlog."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from crawlfleet.coordinator.storage import statements as q
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator
from tests.helpers import eventually, noop

BACKLOG = 20_000
BATCH = 10_000


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan tree."""
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(plan_nodes(child))
    return nodes


async def claim_plan(db: asyncpg.Pool) -> list[dict[str, Any]]:
    """The plan of the claim as a worker's Lease runs it (200 slots, any kind)."""
    explain = await db.fetchval("EXPLAIN (FORMAT JSON) " + q.JOB_LEASE_AVAILABLE.sql, "w1", 200, [], 30_000, None, None)
    return plan_nodes(json.loads(explain)[0]["Plan"])


async def test_claim_walks_the_available_index_after_a_bulk_enqueue(
    coord: RunningCoordinator, db: asyncpg.Pool
) -> None:
    for _ in range(BACKLOG // BATCH):
        await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[noop() for _ in range(BATCH)]))

    async def analyzed() -> bool:
        query = "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'jobs'"
        return bool(await db.fetchval(query))

    # The coordinator analyzes in the background after a large enqueue (autoanalyze would take a minute).
    await eventually(analyzed, what="the coordinator to analyze the freshly loaded jobs table")
    # Candidates come from an ordered walk of jobs_available: no bitmap scan and sort of the backlog.
    scans = [(n["Node Type"], n.get("Index Name")) for n in await claim_plan(db) if "Relation Name" in n]
    assert ("Index Scan", "jobs_available") in scans, scans
    assert not [scan for scan in scans if scan[0].startswith("Bitmap")], scans
