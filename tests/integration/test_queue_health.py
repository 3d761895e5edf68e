"""GetQueueHealth counts a lease as expired (stuck) only once the reaper had time to end it."""

from __future__ import annotations

import asyncpg

from crawlfleet.v1 import admin_pb2
from tests.conftest import StartCoordinator
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
