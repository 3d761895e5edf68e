"""Waiting for many jobs over WatchJobs, with the library against real coordinators: outcomes of
many jobs, ids that match nothing, timeouts, and a watch that outlives a coordinator's drain."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from crawlfleet.client import AsyncClient, Client, JobOutcome, JobsNotFound, JobState, WaitTimeout, WatchUpdate
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.e2e.processes import free_port
from tests.helpers import lease_request, noop, noop_result
from tests.integration.jobs import enqueue, fail

SUCCEEDED, DEAD = JobState.SUCCEEDED, JobState.DEAD


async def finish(coord: RunningCoordinator, job: pb.LeasedJob, *, dies: bool) -> None:
    if dies:
        await fail(coord, job, "http_5xx")
    else:
        done = pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=noop_result())
        await coord.queue.Complete(pb.CompleteRequest(jobs=[done]))


@contextlib.asynccontextmanager
async def stand_in_worker(coord: RunningCoordinator, dying: set[int]) -> AsyncIterator[None]:
    """Leases jobs a few at a time and finishes them; the ids in ``dying`` die."""

    async def work() -> None:
        while True:
            for job in (await coord.queue.Lease(lease_request(max_jobs=7, wait=1.0))).jobs:
                await finish(coord, job, dies=job.id in dying)

    task = asyncio.create_task(work())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_wait_returns_the_outcome_of_each_of_many_jobs(coord: RunningCoordinator) -> None:
    ids = await enqueue(coord, *(noop() for _ in range(60)))
    dying = set(ids[::7])

    def wait() -> dict[int, JobOutcome]:
        with Client(coord.address) as client:
            return client.wait(ids, timeout=60)

    async with stand_in_worker(coord, dying):
        outcomes = await asyncio.to_thread(wait)
    assert list(outcomes) == ids
    states = {job_id: o.state for job_id, o in outcomes.items()}
    assert {i for i, s in states.items() if s == DEAD} == dying
    assert all(s == SUCCEEDED for i, s in states.items() if i not in dying)
    dead = outcomes[min(dying)]
    assert dead.last_error.startswith("http_5xx") and dead.attempt == 1


async def test_watch_reports_jobs_as_they_finish(coord: RunningCoordinator) -> None:
    first, second = await enqueue(coord, noop(), noop())
    async with AsyncClient(coord.address) as client:
        updates = client.watch([first, second], timeout=60)
        snapshot = await anext(updates)
        assert (snapshot.finished, snapshot.remaining, snapshot.watched) == ((), 2, 2)
        (job, _) = (await coord.queue.Lease(lease_request(max_jobs=2))).jobs
        await finish(coord, job, dies=False)
        update = await anext(updates)
        assert [o.job_id for o in update.finished] == [job.id] and update.remaining == 1
        await updates.aclose()


async def test_unknown_ids_and_timeouts(coord: RunningCoordinator) -> None:
    (queued,) = await enqueue(coord, noop())
    async with AsyncClient(coord.address) as client:
        with pytest.raises(JobsNotFound) as missing:
            await client.wait([queued, 987654], timeout=30)
        assert missing.value.job_ids == (987654,) and "987654" in missing.value.message
        with pytest.raises(WaitTimeout) as late:
            await client.wait([queued], timeout=0.5)
        assert late.value.unfinished == (queued,) and late.value.finished == {}
        assert await client.wait([]) == {}


async def test_a_watch_outlives_a_coordinator_drain(start_coordinator: StartCoordinator) -> None:
    side = await start_coordinator()  # the test's own way into the queue while the watched one is down
    address = f"127.0.0.1:{free_port()}"
    watched = await start_coordinator(listen=address)
    ids = await enqueue(side, noop(), noop(), noop())
    leased = {j.id: j for j in (await side.queue.Lease(lease_request(max_jobs=3))).jobs}
    async with AsyncClient(address) as client:
        updates = client.watch(ids, timeout=60)
        assert (await anext(updates)).remaining == 3
        await finish(side, leased[ids[0]], dies=False)
        assert [o.job_id for o in (await anext(updates)).finished] == [ids[0]]
        # The drain ends the stream with UNAVAILABLE; a job finishes while no coordinator listens there.
        await watched.coordinator.stop(grace=1.0)
        resumed = asyncio.ensure_future(anext(updates))
        await finish(side, leased[ids[1]], dies=True)
        await start_coordinator(listen=address)
        update: WatchUpdate = await asyncio.wait_for(resumed, timeout=30)
        assert [(o.job_id, o.state) for o in update.finished] == [(ids[1], DEAD)] and update.remaining == 1
        await finish(side, leased[ids[2]], dies=False)
        last = await anext(updates)
        assert [o.job_id for o in last.finished] == [ids[2]] and last.remaining == 0
        with pytest.raises(StopAsyncIteration):
            await anext(updates)
