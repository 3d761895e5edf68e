"""A crawl's politeness through the real Crawls and Admin APIs: it becomes host policies of the
crawl while the crawl runs, the strictest of several crawls wins, an operator's policy takes
precedence, ending the crawl (cancel or finish) restores the hosts, and only admins may loosen."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import pytest
from google.protobuf import duration_pb2

from crawlfleet.client import AsyncClient, Client, CrawlSpec, PermissionDenied
from crawlfleet.coordinator.politeness import Politeness
from crawlfleet.coordinator.security.auth import Role
from crawlfleet.v1 import admin_pb2, admin_pb2_grpc, crawls_pb2_grpc
from crawlfleet.v1 import crawls_pb2 as cpb
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import error_info, eventually, lease_request, seconds
from tests.integration.test_auth import TOKENS, bearer, with_tokens
from tests.integration.test_cli_crawls import cli
from tests.integration.test_crawls import page_result

SHOP = "https://shop.example/"
# The fleet defaults these tests loosen or tighten: 2 leases at once, 0.5 s apart, robots.txt obeyed.
FLEET_DEFAULTS = Politeness()


@pytest.fixture
async def coord(start_coordinator: StartCoordinator) -> RunningCoordinator:
    """A coordinator with the fleet's own politeness defaults (other tests run unthrottled)."""
    return await start_coordinator(politeness=FLEET_DEFAULTS)


def politeness(
    concurrency: int | None = None, delay: float | None = None, obey_robots: bool | None = None
) -> cpb.CrawlPoliteness:
    polite = cpb.CrawlPoliteness(max_concurrency=concurrency, obey_robots=obey_robots)
    if delay is not None:
        polite.delay.CopyFrom(seconds(delay))
    return polite


def crawl_spec(seed: str = SHOP, **limits: object) -> cpb.CrawlSpec:
    scope = limits.pop("scope", cpb.CRAWL_SCOPE_UNSPECIFIED)
    return cpb.CrawlSpec(seeds=[seed], scope=scope, politeness=politeness(**limits))  # type: ignore[arg-type]


async def start(coord: RunningCoordinator, spec: cpb.CrawlSpec) -> int:
    started = await crawls_pb2_grpc.CrawlsStub(coord.channel).StartCrawl(cpb.StartCrawlRequest(spec=spec))
    return started.crawl_id


async def cancel(coord: RunningCoordinator, crawl_id: int) -> None:
    await crawls_pb2_grpc.CrawlsStub(coord.channel).CancelCrawl(cpb.CancelCrawlRequest(crawl_id=crawl_id))


async def host(coord: RunningCoordinator, name: str = "shop.example") -> admin_pb2.Host:
    return (await admin_pb2_grpc.AdminStub(coord.channel).GetHost(admin_pb2.GetHostRequest(host=name))).host


def limits(found: admin_pb2.Host) -> tuple[str, list[int], int, float, bool]:
    return (
        found.policy_pattern,
        list(found.policy_crawl_ids),
        found.max_concurrency,
        found.delay.ToNanoseconds() / 1e9,
        found.obey_robots,
    )


async def test_a_crawls_politeness_governs_its_hosts_until_it_is_cancelled(
    coord: RunningCoordinator, db: asyncpg.Pool
) -> None:
    crawl_id = await start(coord, crawl_spec(concurrency=1, delay=3))
    assert limits(await host(coord)) == ("shop.example", [crawl_id], 1, 3.0, True)
    got = await crawls_pb2_grpc.CrawlsStub(coord.channel).GetCrawl(cpb.GetCrawlRequest(crawl_id=crawl_id))
    assert list(got.crawl.policy_patterns) == ["shop.example"]
    assert got.crawl.spec.politeness.max_concurrency == 1
    await cancel(coord, crawl_id)
    assert limits(await host(coord)) == ("", [], 2, 0.5, True)  # the fleet defaults again
    assert await db.fetchval("SELECT count(*) FROM crawl_host_policies") == 0


async def test_the_strictest_of_running_crawls_wins_and_ending_one_restores_the_others(
    coord: RunningCoordinator,
) -> None:
    gentle = await start(coord, crawl_spec(concurrency=1, delay=1))
    # Same domain: "*.shop.example" covers shop.example too; the exact pattern is the one shown.
    slower = await start(coord, crawl_spec("https://www.shop.example/", scope=cpb.CRAWL_SCOPE_SAME_DOMAIN, delay=4))
    assert limits(await host(coord)) == ("shop.example", [gentle, slower], 1, 4.0, True)
    assert limits(await host(coord, "www.shop.example")) == ("*.shop.example", [slower], 2, 4.0, True)
    await cancel(coord, slower)
    assert limits(await host(coord)) == ("shop.example", [gentle], 1, 1.0, True)
    assert limits(await host(coord, "www.shop.example")) == ("", [], 2, 0.5, True)


async def test_an_operators_policy_takes_precedence_over_a_crawls(coord: RunningCoordinator) -> None:
    crawl_id = await start(coord, crawl_spec(concurrency=1, delay=3))
    admin = admin_pb2_grpc.AdminStub(coord.channel)
    await admin.SetHostPolicy(admin_pb2.SetHostPolicyRequest(pattern="*.shop.example", max_concurrency=5))
    assert limits(await host(coord)) == ("*.shop.example", [], 5, 0.5, True)
    await admin.ClearHostPolicy(admin_pb2.ClearHostPolicyRequest(pattern="*.shop.example"))
    assert limits(await host(coord)) == ("shop.example", [crawl_id], 1, 3.0, True)


async def test_a_finished_crawl_leaves_its_hosts_to_the_defaults(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    crawl_id = await start(coord, crawl_spec(concurrency=1, delay=0.5, obey_robots=True))
    (seed,) = (await coord.queue.Lease(lease_request(max_jobs=10))).jobs
    await coord.queue.Complete(pb.CompleteRequest(jobs=[page_result(seed, [])]))

    async def finished() -> bool:  # the coordinator's background task finishes idle crawls
        found = await crawls_pb2_grpc.CrawlsStub(coord.channel).GetCrawl(cpb.GetCrawlRequest(crawl_id=crawl_id))
        return found.crawl.state == cpb.CRAWL_STATE_FINISHED

    await eventually(finished, what="the crawl to finish")
    assert limits(await host(coord)) == ("", [], 2, 0.5, True)


BAD_POLITENESS = [
    (politeness(concurrency=0), "spec.politeness.max_concurrency"),
    (politeness(concurrency=10_001), "spec.politeness.max_concurrency"),
    (cpb.CrawlPoliteness(delay=duration_pb2.Duration(seconds=-1)), "spec.politeness.delay"),
    (politeness(delay=25 * 3600), "spec.politeness.delay"),
]


async def test_bad_politeness_names_the_field(coord: RunningCoordinator) -> None:
    for polite, field in BAD_POLITENESS:  # one coordinator for all: starting one is most of a test
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await crawls_pb2_grpc.CrawlsStub(coord.channel).StartCrawl(
                cpb.StartCrawlRequest(spec=cpb.CrawlSpec(seeds=[SHOP], politeness=polite))
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (caught.value.details() or "").startswith(f"{field}:")


async def test_only_admins_may_loosen_politeness_and_producers_may_tighten_it(
    start_coordinator: StartCoordinator,
) -> None:
    coord = await start_coordinator(security=with_tokens(), politeness=FLEET_DEFAULTS)
    stub = crawls_pb2_grpc.CrawlsStub(coord.channel)

    async def start_as(role: str, polite: cpb.CrawlPoliteness) -> int:
        spec = cpb.CrawlSpec(seeds=[SHOP], politeness=polite)
        started = await stub.StartCrawl(cpb.StartCrawlRequest(spec=spec), metadata=bearer(TOKENS[role]))  # type: ignore[index]
        return started.crawl_id

    for polite, name in [
        (politeness(concurrency=3), "max_concurrency"),
        (politeness(delay=0.1), "delay"),
        (politeness(obey_robots=False), "obey_robots"),
        (politeness(concurrency=1, delay=0), "delay"),  # one loosened field is enough
        (politeness(delay=61), "delay"),  # tighter, but it would hold the host back for everyone
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await start_as("producer", polite)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(caught.value).metadata["field"] == f"spec.politeness.{name}"
    assert await start_as("producer", politeness(concurrency=1, delay=2, obey_robots=True)) > 0
    assert await start_as("producer", politeness(delay=60)) > 0
    assert await start_as("admin", politeness(delay=3600)) > 0
    assert await start_as("producer", politeness(concurrency=2, delay=0.5)) > 0  # the defaults themselves
    assert await start_as("admin", politeness(concurrency=16, delay=0, obey_robots=False)) > 0


async def test_the_cli_starts_a_polite_crawl_and_shows_where_the_limits_come_from(coord: RunningCoordinator) -> None:
    started = await cli(
        coord, "crawl", "start", SHOP, "--host-concurrency", "1", "--delay", "2s", "--robots", "obey", "--json"
    )
    assert started.code == 0, started.err
    crawl_id = started.json()["crawl_id"]
    status = await cli(coord, "crawl", "status", str(crawl_id))
    assert "1 at once, 2.0s apart, robots.txt obeyed on shop.example while it runs" in status.out, status.out
    shown = await cli(coord, "hosts", "show", "shop.example")
    assert f"shop.example (crawl {crawl_id})" in shown.out and "1 at once, 2.0s" in shown.out, shown.out
    listed = await cli(coord, "hosts", "list")
    assert f"shop.example (crawl {crawl_id})" in listed.out, listed.out
    assert (await cli(coord, "crawl", "cancel", str(crawl_id))).code == 0
    assert "the fleet defaults" in (await cli(coord, "hosts", "show", "shop.example")).out
    refused = await cli(coord, "crawl", "start", SHOP, "--host-concurrency", "0")
    assert refused.code != 0 and "spec.politeness.max_concurrency" in refused.err, refused.err


async def test_both_clients_carry_a_crawls_politeness_and_type_the_refusal(
    start_coordinator: StartCoordinator,
) -> None:
    coord = await start_coordinator(security=with_tokens(), politeness=FLEET_DEFAULTS)
    gentle = CrawlSpec(seeds=[SHOP], host_concurrency=1, host_delay=2.0, obey_robots=True)
    pushy = CrawlSpec(seeds=[SHOP], host_delay=0.1)
    async with AsyncClient(coord.address, token=TOKENS[Role.PRODUCER]) as producer:
        started = await producer.start_crawl(gentle)
        assert list((await producer.get_crawl(started.id)).policy_patterns) == ["shop.example"]
        with pytest.raises(PermissionDenied) as refused:
            await producer.start_crawl(pushy)
        assert "spec.politeness.delay" in str(refused.value)

    def blocking() -> cpb.Crawl:
        with Client(coord.address, token=TOKENS[Role.ADMIN]) as admin:
            return admin.get_crawl(admin.start_crawl(pushy).id)

    crawl = await asyncio.to_thread(blocking)
    assert crawl.spec.politeness.delay.ToNanoseconds() == 100_000_000
