"""The blocking ``Client`` against an in-process coordinator. Its calls block, so each scenario runs in
a thread while the coordinator serves on the test's event loop."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from crawlfleet.client import (
    Client,
    InvalidArgument,
    JobFilter,
    JobState,
    NotFound,
    PermissionDenied,
    RetryPolicy,
    ScrapeJob,
    Unauthenticated,
    Unavailable,
)
from crawlfleet.coordinator.security.auth import Role, TokenEntry
from crawlfleet.coordinator.security.settings import SecuritySettings
from crawlfleet.v1 import jobs_pb2
from tests.certs import make_pki
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.e2e.processes import free_port
from tests.helpers import lease_request, noop
from tests.integration.jobs import enqueue, fail, get_job, make_dead, make_succeeded

T = TypeVar("T")


async def with_client(coord: RunningCoordinator, scenario: Callable[[Client], T]) -> T:
    """Runs ``scenario`` with a client of ``coord`` in a thread (its calls block)."""

    def run() -> T:
        with Client(coord.address) as client:
            return scenario(client)

    return await asyncio.to_thread(run)


async def test_enqueue_dedupes_live_jobs_unless_keys_differ(coord: RunningCoordinator) -> None:
    def scenario(client: Client) -> None:
        first = client.enqueue("https://a.example/")
        again = client.enqueue(ScrapeJob(url="https://a.example/", priority=9))
        assert first.created and not again.created and again.id == first.id
        keyed = client.enqueue_many([ScrapeJob(url="https://a.example/", idempotency_key=f"run-{n}") for n in range(2)])
        assert all(j.created for j in keyed) and len({first.id, *(j.id for j in keyed)}) == 3
        assert not client.enqueue(ScrapeJob(url="https://a.example/", idempotency_key="run-1")).created

    await with_client(coord, scenario)


async def test_a_job_spec_reaches_the_queue_with_its_options(coord: RunningCoordinator) -> None:
    run_at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    job = ScrapeJob(
        url="https://b.example/page",
        render="auto",
        priority=42,
        run_at=run_at,
        retry=RetryPolicy(maximum_attempts=7),
        skip_images=True,
    )
    enqueued = await with_client(coord, lambda client: client.enqueue(job))
    stored = await get_job(coord, enqueued.id)
    assert stored.spec.scrape.render == jobs_pb2.RENDER_MODE_AUTO and stored.spec.priority == 42
    assert stored.max_attempts == 7 and stored.spec.scrape.skip_images
    assert abs(stored.run_at.ToDatetime(tzinfo=dt.UTC) - run_at) < dt.timedelta(milliseconds=1)


async def test_enqueue_many_in_batches_keeps_the_order(coord: RunningCoordinator) -> None:
    urls = [f"https://shop.example/{n}" for n in range(25)]
    jobs = await with_client(coord, lambda client: client.enqueue_many(urls, batch_size=4))
    assert [j.created for j in jobs] == [True] * 25 and [j.id for j in jobs] == sorted(j.id for j in jobs)
    assert (await get_job(coord, jobs[13].id)).target_url == urls[13]


async def test_an_invalid_job_names_the_field_and_its_place_in_the_input(coord: RunningCoordinator) -> None:
    urls = ["https://ok.example/1", "https://ok.example/2", "https://ok.example/3", "ftp://nope.example/"]

    def scenario() -> InvalidArgument:
        with Client(coord.address) as client, pytest.raises(InvalidArgument) as caught:
            client.enqueue_many(urls, batch_size=2)
        return caught.value

    error = await asyncio.to_thread(scenario)
    assert error.field == "jobs[1].scrape.url" and error.job_index == 3 and error.reason == "INVALID_FIELD"
    assert "jobs[1].scrape.url" in error.message
    # The batch before the failing one stays enqueued; the failing one is atomic.
    stats = await with_client(coord, lambda client: client.stats())
    assert stats.states["queued"] == 2


async def test_get_cancel_and_not_found(coord: RunningCoordinator) -> None:
    (queued,) = await enqueue(coord, noop())

    def scenario(client: Client) -> None:
        assert client.get_job(queued).state == jobs_pb2.JOB_STATE_QUEUED
        assert client.cancel(queued) is JobState.CANCELLED
        assert client.get_job(queued).state == jobs_pb2.JOB_STATE_CANCELLED
        with pytest.raises(NotFound, match="999999"):
            client.get_job(999999)
        with pytest.raises(NotFound):
            client.cancel(999999)

    await with_client(coord, scenario)


async def test_requeue_dead_by_ids_and_by_filter(coord: RunningCoordinator) -> None:
    gone = await make_dead(coord, "https://gone.example/", error_type="http_4xx")
    flaky = await make_dead(coord, "https://flaky.example/", error_type="http_5xx")
    other = await make_dead(coord, "https://other.example/", error_type="http_5xx")

    requeued = await with_client(coord, lambda client: client.requeue_dead(where=JobFilter(error_type="http_5xx")))
    assert sorted(requeued) == [flaky, other]
    assert (await get_job(coord, gone)).state == jobs_pb2.JOB_STATE_DEAD

    def by_ids(client: Client) -> list[int]:
        with pytest.raises(ValueError, match="one of them"):
            client.requeue_dead()
        return client.requeue_dead([gone, flaky])  # flaky is queued now: not requeued

    assert await with_client(coord, by_ids) == [gone]
    assert (await get_job(coord, gone)).state == jobs_pb2.JOB_STATE_QUEUED


async def test_iterating_jobs_pages_transparently(coord: RunningCoordinator) -> None:
    ids = await enqueue(coord, *(noop() for _ in range(23)))
    (leased,) = (await coord.queue.Lease(lease_request(max_jobs=1))).jobs
    await fail(coord, leased)

    def scenario(client: Client) -> None:
        everything = list(client.iter_jobs(page_size=5))
        assert [j.id for j in everything] == sorted(ids, reverse=True)  # newest first, over five pages
        assert [j.id for j in client.iter_jobs(limit=7, page_size=5)] == sorted(ids, reverse=True)[:7]
        dead = list(client.iter_jobs(JobFilter(states=["dead"]), page_size=5))
        assert [j.id for j in dead] == [leased.id]
        page = client.list_jobs(page_size=10)
        assert len(page.jobs) == 10 and page.next_page_token
        following = client.list_jobs(page_size=10, page_token=page.next_page_token)
        assert following.jobs[0].id == page.jobs[-1].id - 1

    await with_client(coord, scenario)


async def test_iterating_results_pages_transparently(coord: RunningCoordinator) -> None:
    done = [await make_succeeded(coord, f"https://done.example/{n}", title=f"Page {n}") for n in range(5)]

    def scenario(client: Client) -> None:
        results = list(client.iter_results(kind="scrape", page_size=2))
        assert [r.job_id for r in results] == done
        assert [r.result.scrape.title for r in results] == [f"Page {n}" for n in range(5)]
        assert [r.job_id for r in client.iter_results(limit=3, page_size=2)] == done[:3]
        assert list(client.iter_results(kind="noop")) == []

    await with_client(coord, scenario)


async def test_stats_health_workers_and_purge(coord: RunningCoordinator) -> None:
    await make_succeeded(coord, "https://old.example/")
    (queued,) = await enqueue(coord, noop())

    def scenario(client: Client) -> None:
        stats = client.stats()
        assert stats.states == {"queued": 1, "leased": 0, "succeeded": 1, "dead": 0, "cancelled": 0, "skipped": 0}
        assert stats.kinds["scrape"]["succeeded"] == 1 and stats.unfinished == 1
        health = client.health(workers_seen_within=60)
        assert health.due == 1 and [w.worker_id for w in health.workers] == ["w-ok"]
        assert [w.worker_id for w in client.list_workers()] == ["w-ok"]
        purged = client.purge(0, batch_size=1)
        assert purged.jobs == 1 and client.stats().states["succeeded"] == 0

    await with_client(coord, scenario)
    assert (await get_job(coord, queued)).state == jobs_pb2.JOB_STATE_QUEUED


async def test_credentials_are_checked_by_the_coordinator(start_coordinator: StartCoordinator, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    tokens = tuple(TokenEntry.from_token(role, f"lib-{role}", f"{role}-secret") for role in (Role.PRODUCER, Role.ADMIN))
    coord = await start_coordinator(
        security=SecuritySettings(tokens=tokens, tls_cert=pki.server_cert, tls_key=pki.server_key)
    )

    def scenario() -> None:
        with Client(coord.address, tls_ca=pki.ca) as anonymous, pytest.raises(Unauthenticated) as caught:
            anonymous.enqueue("https://a.example/")
        assert caught.value.reason == "UNAUTHENTICATED"
        with Client(coord.address, tls_ca=pki.ca, token="producer-secret") as producer:
            job = producer.enqueue("https://a.example/")
            assert producer.get_job(job.id).id == job.id
            with pytest.raises(PermissionDenied):
                producer.stats()
        with Client(coord.address, tls_ca=pki.ca, token="admin-secret") as admin:
            assert admin.stats().states["queued"] == 1
        with Client(coord.address, token="admin-secret") as plain, pytest.raises(Unavailable) as refused:
            plain.stats()  # a plaintext client of a TLS coordinator
        assert not refused.value.answered

    await asyncio.to_thread(scenario)


async def test_an_unreachable_coordinator_is_unavailable() -> None:
    def scenario() -> Unavailable:
        with Client(f"127.0.0.1:{free_port()}", call_timeout=5) as client, pytest.raises(Unavailable) as caught:
            client.stats()
        return caught.value

    error = await asyncio.to_thread(scenario)
    assert not error.answered and not error.tls_failed
