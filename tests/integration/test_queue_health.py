"""GetQueueHealth counts a lease as expired (stuck) only once the reaper had time to end it, and
counts due jobs exactly without walking a large due backlog."""

from __future__ import annotations

import asyncpg
import pytest

from crawlfleet.coordinator.storage import sql
from crawlfleet.coordinator.storage.admin import AdminQueue
from crawlfleet.v1 import admin_pb2
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import eventually, lease_request, noop
from tests.integration.jobs import enqueue


async def test_health_counts_leases_expired_longer_than_a_grace(
    start_coordinator: StartCoordinator, db: asyncpg.Pool
) -> None:
    # The reaper passes every 30 s: a lease just past its expiry is waiting for it, not stuck.
    coord = await start_coordinator(lease_seconds=0.2, reap_interval_seconds=30.0)
    (job_id,) = await enqueue(coord, noop())
    await coord.queue.Lease(lease_request())

    async def expired() -> bool:
        return bool(await db.fetchval("SELECT lease_expires_at < now() FROM jobs WHERE id = $1", job_id))

    await eventually(expired, what="the lease to run out")
    health = await coord.admin.GetQueueHealth(admin_pb2.GetQueueHealthRequest())
    assert health.leases_expired == 0

    # Expired longer than twice the reap interval and still leased: the reaper is behind.
    await db.execute("UPDATE jobs SET lease_expires_at = now() - interval '61 seconds' WHERE id = $1", job_id)
    health = await coord.admin.GetQueueHealth(admin_pb2.GetQueueHealthRequest())
    assert health.leases_expired == 1


@pytest.mark.parametrize("not_due_bound", [1_000, 2])
async def test_due_jobs_are_exact_from_either_side(
    coord: RunningCoordinator, db: asyncpg.Pool, not_due_bound: int
) -> None:
    """Due = kept queued count less the jobs not yet due (fewer than the bound), else counted
    directly: the same figure either way, with count deltas folded or not."""
    await enqueue(coord, *(noop() for _ in range(5)))
    await AdminQueue(db).fold_counts()
    await enqueue(coord, *(noop() for _ in range(2)))  # their deltas not folded
    await db.execute("UPDATE jobs SET run_at = now() + interval '1 hour' WHERE id IN (SELECT id FROM jobs LIMIT 3)")
    await coord.queue.Lease(lease_request(max_jobs=1))
    health = await db.fetchrow(sql.query("queue_health"), 1000, 1000, None, not_due_bound)
    assert health is not None and health["due"] == 3
    assert (await coord.admin.GetQueueHealth(admin_pb2.GetQueueHealthRequest())).due == 3
