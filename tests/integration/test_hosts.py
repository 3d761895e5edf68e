"""ListHosts and GetHost through an in-process coordinator: what a host shows, filters, paging,
and the answers to bad requests."""

from __future__ import annotations

from collections.abc import Awaitable

import grpc
import pytest

from crawlfleet.coordinator.api import hosts as hosts_servicer
from crawlfleet.coordinator.politeness import Politeness
from crawlfleet.v1 import admin_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import error_info, lease_request, scrape, seconds
from tests.integration.jobs import complete, enqueue
from tests.integration.test_adaptive_delay import ADAPTIVE, page

POLITE = Politeness(host_concurrency=3, host_delay_seconds=0.25, obey_robots=False)


async def get_host(coord: RunningCoordinator, host: str) -> admin_pb2.Host:
    return (await coord.admin.GetHost(admin_pb2.GetHostRequest(host=host))).host


async def list_hosts(coord: RunningCoordinator, **fields: object) -> admin_pb2.ListHostsResponse:
    return await coord.admin.ListHosts(admin_pb2.ListHostsRequest(**fields))  # type: ignore[arg-type]


async def invalid_field(call: Awaitable[object]) -> str:
    """The field an INVALID_ARGUMENT answer names."""
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, refused.value
    field: str = error_info(refused.value).metadata["field"]
    return field


async def test_a_host_shows_its_work_and_the_fleet_defaults(start_coordinator: StartCoordinator) -> None:
    coord = await start_coordinator(politeness=POLITE)
    await enqueue(coord, *(scrape(f"https://Shop.Example:8443/p/{n}") for n in range(4)))
    (leased,) = (await coord.queue.Lease(lease_request(max_jobs=10))).jobs  # the delay allows one start
    host = await get_host(coord, "shop.example:8443")
    assert (host.host, host.in_flight, host.queued, host.queued_capped) == ("shop.example:8443", 1, 3, False)
    assert (host.max_concurrency, host.delay.ToMilliseconds(), host.obey_robots) == (3, 250, False)
    assert host.policy_pattern == "" and host.leases_started == 1 and host.HasField("last_lease_at")
    assert host.HasField("ready_at") and not host.paused and not host.probing and host.error_streak == 0
    assert host.robots.state == "unknown" and not host.robots.HasField("crawl_delay")
    assert host.recent_failures.http_429 == 0 and not host.recent_failures.HasField("window_started_at")
    await complete(coord, leased)
    assert (await get_host(coord, "shop.example:8443")).in_flight == 0


async def test_unknown_and_misspelled_hosts(coord: RunningCoordinator) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await get_host(coord, "never.example")
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    assert error_info(missing.value).reason == "HOST_NOT_FOUND"
    assert error_info(missing.value).metadata["host"] == "never.example"
    for bad in ("", "Shop.Example", "https://shop.example/", "shop.example/", "*.shop.example", "a b"):
        assert await invalid_field(get_host(coord, bad)) == "host", bad
    assert await invalid_field(get_host(coord, "x" * 256)) == "host"


async def hosts_of(coord: RunningCoordinator, **fields: object) -> list[str]:
    return [h.host for h in (await list_hosts(coord, **fields)).hosts]


async def test_list_pages_in_host_order_and_filters(coord: RunningCoordinator) -> None:
    names = ["a.example", "b.example", "b.example:8080", "c.example", "d.test", "e.test"]
    await enqueue(coord, *(scrape(f"http://{name}/") for name in names))
    seen: list[str] = []
    token = ""
    while True:
        page = await list_hosts(coord, page_size=4, page_token=token)
        assert len(page.hosts) <= 4
        seen += [h.host for h in page.hosts]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(names)
    assert await hosts_of(coord, host_prefix="b.") == ["b.example", "b.example:8080"]
    assert await hosts_of(coord, host_prefix="zzz") == []
    # d.test's job finishes: it keeps its row, without queued work.
    leased = (await coord.queue.Lease(lease_request(max_jobs=10))).jobs
    (d_job,) = [j for j in leased if j.host.name == "d.test"]
    await complete(coord, d_job)
    for job in leased:
        if job is not d_job:
            await coord.queue.Fail(
                pb.FailRequest(job_id=job.id, lease_token=job.lease_token, error_type="x", release=True)
            )
    assert "d.test" in await hosts_of(coord)
    assert await hosts_of(coord, queued_only=True) == [n for n in names if n != "d.test"]
    assert await hosts_of(coord, paused_only=True) == []
    await coord.admin.PauseHost(admin_pb2.PauseHostRequest(host="e.test", reason="x"))
    assert await hosts_of(coord, paused_only=True, queued_only=True) == ["e.test"]


async def test_queued_jobs_are_counted_up_to_a_bound(
    coord: RunningCoordinator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hosts_servicer, "LIST_QUEUED_CAP", 3)  # a listing's bound, made small for the test
    await enqueue(coord, *(scrape(f"http://big.example/{n}") for n in range(5)))
    await enqueue(coord, *(scrape(f"http://small.example/{n}") for n in range(3)))
    listed = {h.host: (h.queued, h.queued_capped) for h in (await list_hosts(coord)).hosts}
    assert listed == {"big.example": (3, True), "small.example": (3, False)}
    big = await get_host(coord, "big.example")  # GetHost counts further
    assert (big.queued, big.queued_capped) == (5, False)


BAD_LISTINGS: list[tuple[str, dict[str, object], str]] = [
    ("page size too large", {"page_size": 1001}, "page_size"),
    ("negative page size", {"page_size": -1}, "page_size"),
    ("token not a host", {"page_token": "not a host"}, "page_token"),
    ("upper-case prefix", {"host_prefix": "Shop"}, "host_prefix"),
    ("prefix with a path", {"host_prefix": "shop.example/"}, "host_prefix"),
    ("long prefix", {"host_prefix": "a" * 256}, "host_prefix"),
]


@pytest.mark.parametrize(("fields", "field"), [(f, n) for _, f, n in BAD_LISTINGS], ids=[c for c, _, _ in BAD_LISTINGS])
async def test_bad_listings_name_their_field(coord: RunningCoordinator, fields: dict[str, object], field: str) -> None:
    assert await invalid_field(list_hosts(coord, **fields)) == field


async def test_the_defaults_shown_are_the_answering_coordinators(start_coordinator: StartCoordinator) -> None:
    polite = await start_coordinator(politeness=POLITE)
    await enqueue(polite, scrape("http://one.example/"))
    other = await start_coordinator(politeness=Politeness(host_concurrency=7, host_delay_seconds=2, obey_robots=True))
    shown = await get_host(other, "one.example")
    assert (shown.max_concurrency, shown.delay.ToSeconds(), shown.obey_robots) == (7, 2, True)
    listed = (await list_hosts(polite)).hosts[0]
    assert (listed.max_concurrency, listed.delay.ToMilliseconds()) == (3, 250)


async def test_a_learnt_delay_raises_the_delay_shown(start_coordinator: StartCoordinator) -> None:
    coord = await start_coordinator(politeness=ADAPTIVE)
    await enqueue(coord, scrape("https://slow.example/1"), scrape("https://slow.example/2"))
    (job,) = (await coord.queue.Lease(lease_request(max_jobs=1))).jobs
    await coord.queue.Complete(pb.CompleteRequest(jobs=[page(job, 800)]))
    host = await get_host(coord, "slow.example")
    assert (host.adaptive_delay.ToMilliseconds(), host.delay.ToMilliseconds()) == (800, 800)
    await coord.admin.SetHostPolicy(admin_pb2.SetHostPolicyRequest(pattern="slow.example", delay=seconds(2)))
    host = await get_host(coord, "slow.example")
    assert (host.adaptive_delay.ToMilliseconds(), host.delay.ToMilliseconds()) == (800, 2000)
