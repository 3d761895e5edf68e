"""The coordinator's database connections are killed mid-run (pg_terminate_backend, as a
PostgreSQL restart or an operator would): every call answers OK or UNAVAILABLE, never UNKNOWN,
and the pool replaces the dead connections."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable
from typing import TypeVar

import asyncpg
import grpc
import pytest

from crawlfleet.coordinator.errors import DatabaseUnavailable
from crawlfleet.coordinator.storage.translate import connection
from crawlfleet.v1 import admin_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import eventually, lease_request, noop, noop_result

CALLERS = 6
ROUNDS = 60
KILLS = 20
T = TypeVar("T")

TERMINATE = """
    SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = 'crawlfleet-coordinator'"""


async def one_round(coord: RunningCoordinator, worker_id: str, codes: Counter[grpc.StatusCode]) -> None:
    """Enqueue, lease, heartbeat and complete one job, then read health; record each call's status."""

    async def call(rpc: Awaitable[T]) -> T | None:
        try:
            result = await rpc
        except grpc.aio.AioRpcError as error:
            codes[error.code()] += 1
            return None
        codes[grpc.StatusCode.OK] += 1
        return result

    await call(coord.queue.Enqueue(pb.EnqueueRequest(jobs=[noop()])))
    leased = await call(coord.queue.Lease(lease_request(worker_id=worker_id, max_jobs=1)))
    jobs = list(leased.jobs) if leased is not None else []
    for job in jobs:
        ref = pb.LeaseRef(job_id=job.id, lease_token=job.lease_token)
        await call(coord.queue.Heartbeat(pb.HeartbeatRequest(worker_id=worker_id, leases=[ref])))
        done = pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=noop_result())
        await call(coord.queue.Complete(pb.CompleteRequest(jobs=[done])))
    await call(coord.admin.GetQueueHealth(admin_pb2.GetQueueHealthRequest()))


async def test_terminated_backends_answer_unavailable_not_unknown(
    start_coordinator: StartCoordinator, db_dsn: str
) -> None:
    coord = await start_coordinator(pool_size=4)
    killer = await asyncpg.connect(db_dsn)
    codes: Counter[grpc.StatusCode] = Counter()

    async def caller(n: int) -> None:
        for _ in range(ROUNDS):
            await one_round(coord, f"w{n}", codes)

    async def kill_repeatedly() -> None:
        for _ in range(KILLS):

            async def some_connected() -> bool:
                return bool(await killer.fetchval(TERMINATE))

            await eventually(some_connected, what="coordinator connections to kill")
            await asyncio.sleep(0)  # let calls run on the new connections

    try:
        await asyncio.gather(kill_repeatedly(), *(caller(n) for n in range(CALLERS)))
    finally:
        await killer.close()
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, codes

    async def recovered() -> bool:
        before = Counter(codes)
        await one_round(coord, "after", codes)
        return codes[grpc.StatusCode.OK] - before[grpc.StatusCode.OK] >= 3

    await eventually(recovered, what="calls to succeed again")


async def test_a_connection_left_broken_by_the_driver_is_discarded(db: asyncpg.Pool) -> None:
    pids: list[int] = []
    with pytest.raises(DatabaseUnavailable):
        async with connection(db) as conn:
            pids.append(conn.get_server_pid())
            raise asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress")

    async def backend_gone() -> bool:
        return bool(await db.fetchval("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $1", pids[0]))

    await eventually(backend_gone, what="the broken connection to be closed")
