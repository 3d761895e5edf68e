"""An in-process worker against a real coordinator: cancelled and self-fenced leases."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg

from crawlfleet.v1 import admin_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.worker.runner import Worker
from crawlfleet.worker.settings import WorkerSettings
from tests.conftest import StartCoordinator
from tests.helpers import eventually, noop


@contextlib.asynccontextmanager
async def running_worker(address: str) -> AsyncIterator[Worker]:
    settings = WorkerSettings(
        coordinator=address,
        worker_id="fenced",
        slots=2,
        lease_wait=1.0,
        shutdown_grace=0.0,
        shutdown_report_timeout=2.0,
    )
    async with Worker(settings) as worker:
        task = asyncio.create_task(worker.run())
        try:
            yield worker
        finally:
            await worker.shutdown()
            await task


async def holds(worker: Worker, count: int) -> bool:
    return worker.held_leases == count


async def leased_count(db: asyncpg.Pool) -> int:
    return int(await db.fetchval("SELECT count(*) FROM jobs WHERE state = 'leased'"))


async def test_worker_stops_a_job_once_the_coordinator_is_gone_past_the_lease(
    start_coordinator: StartCoordinator, db: asyncpg.Pool
) -> None:
    coord = await start_coordinator(lease_seconds=1.5, reap_interval_seconds=60.0)
    await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[noop(duration=600)]))
    async with running_worker(coord.address) as worker:
        await eventually(lambda: holds(worker, 1), what="the worker to hold the lease")
        await coord.coordinator.stop(grace=0)
        await eventually(lambda: holds(worker, 0), timeout=10, what="the worker to stop the job on its own")
    # Nothing was reported: the job stays leased in the database until a reaper ends it.
    assert await leased_count(db) == 1


async def test_cancelled_job_is_stopped_and_not_reported(start_coordinator: StartCoordinator, db: asyncpg.Pool) -> None:
    coord = await start_coordinator(lease_seconds=1.5)
    (job,) = (await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[noop(duration=600)]))).jobs
    async with running_worker(coord.address) as worker:
        await eventually(lambda: holds(worker, 1), what="the worker to hold the lease")
        await coord.admin.CancelJob(admin_pb2.CancelJobRequest(job_id=job.id))
        await eventually(lambda: holds(worker, 0), timeout=10, what="the worker to drop the cancelled job")
    row = await db.fetchrow("SELECT state::text, result FROM jobs WHERE id = $1", job.id)
    assert tuple(row) == ("cancelled", None)
    outcomes = await db.fetch("SELECT outcome FROM job_attempts WHERE job_id = $1", job.id)
    assert [r["outcome"] for r in outcomes] == ["cancelled"]
