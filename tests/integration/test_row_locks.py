"""A row lock held by another session on one leased job: Heartbeat skips that lease instead of
stalling the worker's others, Complete is answered UNAVAILABLE within the lock timeout instead of
hanging, and the reaper takes the row once the lock is gone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import grpc
import pytest

from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import error_info, eventually, lease_request, noop, noop_result
from tests.integration.jobs import enqueue

# Deadlines far above the lock timeout and far below a stall: calls that wait on the lock fail.
CALL_TIMEOUT = 10.0


@asynccontextmanager
async def row_locked(db_dsn: str, job_id: int) -> AsyncIterator[None]:
    """Another session holds `SELECT … FOR UPDATE` on the job's row until the block ends."""
    conn = await asyncpg.connect(db_dsn)
    try:
        async with conn.transaction():
            await conn.execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", job_id)
            yield
    finally:
        await conn.close()


def refs(*jobs: pb.LeasedJob) -> list[pb.LeaseRef]:
    return [pb.LeaseRef(job_id=j.id, lease_token=j.lease_token) for j in jobs]


async def test_heartbeat_skips_a_locked_lease_and_complete_is_retried(
    start_coordinator: StartCoordinator, db_dsn: str
) -> None:
    coord: RunningCoordinator = await start_coordinator(lock_timeout_seconds=0.5)
    await enqueue(coord, noop(), noop())
    locked, free = (await coord.queue.Lease(lease_request())).jobs
    async with row_locked(db_dsn, locked.id):
        answer = await coord.queue.Heartbeat(
            pb.HeartbeatRequest(worker_id="w1", leases=refs(locked, free)), timeout=CALL_TIMEOUT
        )
        # The locked lease is left out (its expiry stands); the other one is extended.
        assert [(s.job_id, s.status) for s in answer.leases] == [(free.id, pb.LEASE_STATUS_EXTENDED)]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            done = pb.CompletedJob(job_id=locked.id, lease_token=locked.lease_token, result=noop_result())
            await coord.queue.Complete(pb.CompleteRequest(jobs=[done]), timeout=CALL_TIMEOUT)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_info(caught.value).reason == "DATABASE_BUSY"
    # The lock is gone: the retried Complete goes through, and the heartbeat settles it.
    done = pb.CompletedJob(job_id=locked.id, lease_token=locked.lease_token, result=noop_result())
    await coord.queue.Complete(pb.CompleteRequest(jobs=[done]), timeout=CALL_TIMEOUT)
    answer = await coord.queue.Heartbeat(pb.HeartbeatRequest(worker_id="w1", leases=refs(locked)))
    assert [(s.job_id, s.status) for s in answer.leases] == [(locked.id, pb.LEASE_STATUS_COMPLETED)]


async def test_reaper_takes_a_locked_row_once_the_lock_is_gone(
    start_coordinator: StartCoordinator, db_dsn: str, db: asyncpg.Pool
) -> None:
    coord = await start_coordinator(lease_seconds=0.3)
    (job_id,) = await enqueue(coord, noop())
    await coord.queue.Lease(lease_request(worker_id="crashed"))

    async def state() -> str:
        return str(await db.fetchval("SELECT state::text FROM jobs WHERE id = $1", job_id))

    async with row_locked(db_dsn, job_id):

        async def expired_a_while() -> bool:
            # Several reaper passes (every 0.2 s) have come and gone since the lease ran out.
            return bool(
                await db.fetchval(
                    "SELECT lease_expires_at < now() - interval '1 second' FROM jobs WHERE id = $1", job_id
                )
            )

        await eventually(expired_a_while, what="the lease to be long expired")
        assert await state() == "leased"  # skipped while locked

    async def requeued() -> bool:
        return await state() == "queued"

    await eventually(requeued, what="the reaper to take the row once unlocked")
