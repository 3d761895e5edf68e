"""Crawls through the client library, blocking and asyncio, against an in-process coordinator with a
stand-in worker completing the pages; and ListResults of one crawl, whose owner rule holds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import asyncpg
import grpc
import pytest

from crawlfleet.client import (
    AsyncClient,
    Client,
    CrawlSpec,
    CrawlState,
    CrawlWaitTimeout,
    InvalidArgument,
    NotFound,
)
from crawlfleet.coordinator.security.auth import Role, TokenEntry
from crawlfleet.coordinator.security.settings import SecuritySettings
from crawlfleet.v1 import admin_pb2, crawls_pb2, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import lease_request
from tests.integration.crawl_pages import crawl_through, lease_pages, page_result
from tests.integration.jobs import make_succeeded

T = TypeVar("T")
SHOP = "https://shop.example/"
SITE = {SHOP: [f"{SHOP}a", f"{SHOP}b"], f"{SHOP}a": [f"{SHOP}a/1"]}
FAST = 0.2  # how often the coordinator looks at a crawl waited for here (the least it takes)


async def in_thread(coord: RunningCoordinator, scenario: Callable[[Client], T]) -> T:
    def run() -> T:
        with Client(coord.address) as client:
            return scenario(client)

    return await asyncio.to_thread(run)


async def test_start_follow_and_read_a_crawl(coord: RunningCoordinator) -> None:
    other = await make_succeeded(coord, "https://other.example/")
    spec = CrawlSpec(seeds=[SHOP], max_depth=1, max_pages=50, render="auto", follow=["main"], priority=5)
    started = await in_thread(coord, lambda client: client.start_crawl(spec))
    assert started.seeds_enqueued == 1
    crawl = await in_thread(coord, lambda client: client.get_crawl(started.id))
    assert crawl.state == crawls_pb2.CRAWL_STATE_RUNNING and crawl.queued == 1
    assert crawl.spec.max_depth == 1 and crawl.spec.page.render == jobs_pb2.RENDER_MODE_AUTO
    assert list(crawl.spec.page.follow_selectors) == ["main"] and crawl.spec.priority == 5

    seen: list[crawls_pb2.Crawl] = []
    waiting = asyncio.ensure_future(
        in_thread(coord, lambda client: client.wait_crawl(started.id, interval=FAST, on_progress=seen.append))
    )
    pages = await crawl_through(coord, SITE)  # depth 1: the home page, a and b
    ended = await waiting
    assert ended.state == crawls_pb2.CRAWL_STATE_FINISHED and ended.succeeded == 3 == len(pages)
    assert seen[0].state == crawls_pb2.CRAWL_STATE_RUNNING and seen[-1] == ended
    assert [(d.depth, d.succeeded) for d in ended.depths] == [(0, 1), (1, 2)]

    results = await in_thread(coord, lambda client: [r.job_id for r in client.iter_results(crawl_id=started.id)])
    assert results == sorted(pages) and other not in results
    page = await in_thread(coord, lambda client: client.list_results(crawl_id=started.id, page_size=2))
    assert [r.job_id for r in page.results] == sorted(pages)[:2] and page.next_page_token
    everything = await in_thread(coord, lambda client: [r.job_id for r in client.iter_results()])
    assert sorted(everything) == sorted([*pages, other])


async def test_list_cancel_and_errors(coord: RunningCoordinator) -> None:
    ids = await in_thread(coord, lambda client: [client.start_crawl([f"https://s{n}.example/"]).id for n in range(3)])

    def listing(client: Client) -> tuple[list[int], list[int], str]:
        every = [c.id for c in client.iter_crawls(page_size=1)]
        first_two = [c.id for c in client.iter_crawls(limit=2)]
        page = client.list_crawls(page_size=2)
        return every, first_two, page.next_page_token

    every, first_two, token = await in_thread(coord, listing)
    assert every == ids[::-1] and first_two == ids[:0:-1] and token

    await lease_pages(coord, max_jobs=1)  # one of the three seeds is leased; its crawl's cancel stops it
    outcomes = await in_thread(coord, lambda client: [client.cancel_crawl(i) for i in ids])
    assert [o.state for o in outcomes] == [CrawlState.CANCELLED] * 3
    assert sorted((o.cancelled_jobs, o.stopping_jobs) for o in outcomes) == [(0, 1), (1, 0), (1, 0)]
    ended = await in_thread(coord, lambda client: client.wait_crawl(ids[0], interval=FAST))
    assert ended.state == crawls_pb2.CRAWL_STATE_CANCELLED

    def errors(client: Client) -> None:
        with pytest.raises(NotFound, match="crawl 424242 does not exist"):
            client.get_crawl(424242)
        with pytest.raises(NotFound):
            client.wait_crawl(424242)
        with pytest.raises(NotFound):
            client.cancel_crawl(424242)
        with pytest.raises(InvalidArgument) as caught:
            client.start_crawl(CrawlSpec(seeds=[SHOP], max_pages=-1))
        assert caught.value.field == "spec.max_pages"
        with pytest.raises(ValueError):
            client.list_results(crawl_id=0)

    await in_thread(coord, errors)


async def test_a_wait_times_out_with_the_crawl_as_last_read(coord: RunningCoordinator) -> None:
    def scenario(client: Client) -> None:
        started = client.start_crawl(SHOP)
        with pytest.raises(CrawlWaitTimeout) as caught:
            client.wait_crawl(started.id, timeout=1.0, interval=FAST)
        assert caught.value.crawl is not None and caught.value.crawl.state == crawls_pb2.CRAWL_STATE_RUNNING
        assert caught.value.remaining == 1 and caught.value.crawl_id == started.id

    await in_thread(coord, scenario)


async def test_the_async_client_runs_crawls_too(coord: RunningCoordinator) -> None:
    async with AsyncClient(coord.address) as client:
        started = await client.start_crawl(CrawlSpec(seeds=[SHOP], max_depth=2, skip_images=True))
        progress: list[int] = []

        async def report(crawl: crawls_pb2.Crawl) -> None:
            progress.append(crawl.succeeded)

        waiting = asyncio.ensure_future(client.wait_crawl(started.id, interval=FAST, on_progress=report))
        pages = await crawl_through(coord, SITE)
        ended = await waiting
        assert ended.state == crawls_pb2.CRAWL_STATE_FINISHED and ended.succeeded == len(pages) == 4
        assert progress[-1] == 4
        assert [r.job_id async for r in client.iter_results(crawl_id=started.id, page_size=1)] == sorted(pages)
        assert [c.id async for c in client.iter_crawls()] == [started.id]
        assert (await client.list_crawls()).crawls[0].id == started.id
        cancelled = await client.cancel_crawl(started.id)
        assert cancelled.state is CrawlState.FINISHED and cancelled.cancelled_jobs == 0  # it had finished
        with pytest.raises(NotFound):
            await client.get_crawl(started.id + 1)
        second = await client.start_crawl([f"{SHOP}x"])
        with pytest.raises(CrawlWaitTimeout):
            await client.wait_crawl(second.id, timeout=0, interval=FAST)


TOKENS = {"alice": (Role.PRODUCER, "alice-secret"), "bob": (Role.PRODUCER, "bob-secret")}
TOKENS |= {"fleet": (Role.WORKER, "fleet-secret"), "ops": (Role.ADMIN, "ops-secret")}


async def test_a_crawls_results_are_its_owners_and_admins(start_coordinator: StartCoordinator) -> None:
    tokens = tuple(TokenEntry.from_token(role, name, token) for name, (role, token) in TOKENS.items())
    coord = await start_coordinator(security=SecuritySettings(tokens=tokens))
    worker = (("authorization", "Bearer fleet-secret"),)
    async with (
        AsyncClient(coord.address, token="alice-secret") as alice,
        AsyncClient(coord.address, token="bob-secret") as bob,
        AsyncClient(coord.address, token="ops-secret") as ops,
    ):
        started = await alice.start_crawl(SHOP)
        leased = await coord.queue.Lease(lease_request(worker_id="fleet"), metadata=worker)
        done = [page_result(job, []) for job in leased.jobs]
        await coord.queue.Complete(pb.CompleteRequest(jobs=done), metadata=worker)
        page_ids = [job.id for job in leased.jobs]
        assert [r.job_id async for r in alice.iter_results(crawl_id=started.id)] == page_ids
        assert [r.job_id async for r in ops.iter_results(crawl_id=started.id)] == page_ids
        # Another producer's crawl has no results for bob, as it has no crawl for him.
        assert [r.job_id async for r in bob.iter_results(crawl_id=started.id)] == []
        with pytest.raises(NotFound):
            await bob.get_crawl(started.id)
        with pytest.raises(NotFound):
            await bob.wait_crawl(started.id)
        ended = await alice.wait_crawl(started.id, interval=FAST)  # a producer follows its own crawl
        assert ended.state == crawls_pb2.CRAWL_STATE_FINISHED
    request = admin_pb2.ListResultsRequest(crawl_id=-1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coord.admin.ListResults(request, metadata=(("authorization", "Bearer ops-secret"),))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith("crawl_id:")


async def test_the_crawl_index_keys_the_id_last(db: asyncpg.Pool) -> None:
    """A crawl's export pages walk jobs_crawl from the cursor (see migration 0011)."""
    definition = await db.fetchval("SELECT indexdef FROM pg_indexes WHERE indexname = 'jobs_crawl'")
    assert "(crawl_id, state, id) WHERE (crawl_id IS NOT NULL)" in definition
