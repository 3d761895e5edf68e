"""The asyncio ``AsyncClient`` against an in-process coordinator, on the test's own event loop."""

from __future__ import annotations

import pytest

from crawlfleet.client import (
    AsyncClient,
    InvalidArgument,
    JobFilter,
    JobState,
    NotFound,
    PermissionDenied,
    ScrapeJob,
    Unauthenticated,
)
from crawlfleet.coordinator.security.auth import Role, TokenEntry
from crawlfleet.coordinator.security.settings import SecuritySettings
from crawlfleet.v1 import jobs_pb2
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import lease_request, noop
from tests.integration.jobs import enqueue, get_job, make_dead, make_succeeded


async def test_enqueue_get_and_cancel(coord: RunningCoordinator) -> None:
    async with AsyncClient(coord.address) as client:
        first = await client.enqueue(ScrapeJob(url="https://a.example/", render="browser"))
        again = await client.enqueue("https://a.example/")
        assert first.created and (again.id, again.created) == (first.id, False)
        many = await client.enqueue_many([f"https://b.example/{n}" for n in range(7)], batch_size=3)
        assert len(many) == 7 and all(j.created for j in many)
        job = await client.get_job(first.id)
        assert job.spec.scrape.render == jobs_pb2.RENDER_MODE_BROWSER
        assert await client.cancel(first.id) is JobState.CANCELLED
        (leased,) = (await coord.queue.Lease(lease_request(max_jobs=1))).jobs
        assert await client.cancel(leased.id) is JobState.LEASED  # stops at its next heartbeat
        assert (await get_job(coord, leased.id)).cancel_requested


async def test_errors_are_translated(coord: RunningCoordinator) -> None:
    async with AsyncClient(coord.address) as client:
        with pytest.raises(NotFound):
            await client.get_job(424242)
        with pytest.raises(InvalidArgument) as caught:
            await client.enqueue_many(["https://ok.example/", ScrapeJob(url="https://ok.example/2", priority=1000)])
        assert caught.value.field == "jobs[1].priority" and caught.value.job_index == 1
        assert (await client.stats()).states["queued"] == 0


async def test_requeue_and_iterate_across_pages(coord: RunningCoordinator) -> None:
    dead = [await make_dead(coord, f"https://dead.example/{n}") for n in range(3)]
    done = [await make_succeeded(coord, f"https://done.example/{n}") for n in range(4)]
    queued = await enqueue(coord, *(noop() for _ in range(5)))
    async with AsyncClient(coord.address) as client:
        listed = [j.id async for j in client.iter_jobs(page_size=2)]
        assert listed == sorted([*dead, *done, *queued], reverse=True)
        assert [j.id async for j in client.iter_jobs(JobFilter(states=["dead"]), page_size=2)] == dead[::-1]
        assert [r.job_id async for r in client.iter_results(page_size=3)] == done
        assert await client.requeue_dead([dead[0]]) == [dead[0]]
        assert sorted(await client.requeue_dead(where=JobFilter(), batch_size=1)) == dead[1:]
        assert (await client.stats()).states["dead"] == 0


async def test_the_token_travels_on_a_plain_loopback_channel(start_coordinator: StartCoordinator) -> None:
    tokens = (TokenEntry.from_token(Role.PRODUCER, "lib-producer", "producer-secret"),)
    coord = await start_coordinator(security=SecuritySettings(tokens=tokens))
    async with AsyncClient(coord.address) as anonymous:
        with pytest.raises(Unauthenticated):
            await anonymous.enqueue("https://a.example/")
    async with AsyncClient(coord.address, token="producer-secret") as producer:
        job = await producer.enqueue("https://a.example/")
        assert (await producer.get_job(job.id)).id == job.id
        with pytest.raises(PermissionDenied) as denied:
            await producer.cancel(job.id)
        assert denied.value.metadata["role"] == "producer"
