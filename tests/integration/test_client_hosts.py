"""The host methods of ``Client`` and ``AsyncClient`` against an in-process coordinator."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from crawlfleet.client import AsyncClient, Client, HostPolicyChange, InvalidArgument, NotFound
from tests.conftest import RunningCoordinator
from tests.helpers import lease_request, scrape
from tests.integration.jobs import enqueue
from tests.integration.test_client import with_client


async def test_hosts_policies_pause_and_resume(coord: RunningCoordinator) -> None:
    await enqueue(coord, *(scrape(f"http://{h}/") for h in ("a.shop.example", "b.shop.example", "x.test")))

    def scenario(client: Client) -> None:
        assert [h.host for h in client.iter_hosts(page_size=1)] == ["a.shop.example", "b.shop.example", "x.test"]
        assert [h.host for h in client.iter_hosts(prefix="b.", limit=5)] == ["b.shop.example"]
        page = client.list_hosts(page_size=2)
        assert len(page.hosts) == 2 and page.next_page_token == "b.shop.example"
        change = client.set_host_policy("*.shop.example", max_concurrency=4, delay=dt.timedelta(seconds=2), note="ok")
        assert isinstance(change, HostPolicyChange) and change.hosts == 2
        assert (change.policy.max_concurrency, change.policy.delay.ToSeconds()) == (4, 2)
        assert not change.policy.HasField("obey_robots")
        host = client.get_host("a.shop.example")
        assert (host.policy_pattern, host.max_concurrency) == ("*.shop.example", 4)
        assert [p.pattern for p in client.iter_host_policies()] == ["*.shop.example"]
        assert client.clear_host_policy("*.shop.example").hosts == 2
        assert client.list_host_policies().policies == []
        paused = client.pause_host("x.test", pause_for=600, reason="asked to")
        assert paused.paused and paused.pause_reason == "operator: asked to"
        assert [h.host for h in client.iter_hosts(paused_only=True)] == ["x.test"]
        assert not client.resume_host("x.test").paused
        with pytest.raises(NotFound):
            client.get_host("never.example")
        with pytest.raises(NotFound):
            client.clear_host_policy("never.example")
        with pytest.raises(InvalidArgument) as bad:
            client.set_host_policy("*.shop.example", max_concurrency=0)
        assert bad.value.field == "max_concurrency"
        with pytest.raises(ValueError, match="page_size"):
            client.list_hosts(page_size=5000)

    await with_client(coord, scenario)


async def test_the_async_client_has_the_same_host_methods(coord: RunningCoordinator) -> None:
    await enqueue(coord, *(scrape(f"http://{h}/") for h in ("one.example", "two.example")))
    async with AsyncClient(coord.address) as client:
        assert [h.host async for h in client.iter_hosts(page_size=1)] == ["one.example", "two.example"]
        assert (await client.list_hosts(queued_only=True)).next_page_token == ""
        assert (await client.set_host_policy("one.example", obey_robots=False)).hosts == 1
        assert [p.pattern async for p in client.iter_host_policies(page_size=1)] == ["one.example"]
        assert (await client.list_host_policies()).policies[0].obey_robots is False
        held = await client.pause_host("one.example")
        assert held.paused and not held.HasField("paused_until")
        leased = (await coord.queue.Lease(lease_request(max_jobs=10))).jobs
        assert [j.host.name for j in leased] == ["two.example"]
        waiting = asyncio.ensure_future(coord.queue.Lease(lease_request(worker_id="w2", wait=5.0)))
        assert not (await client.resume_host("one.example")).paused
        assert [j.host.name for j in (await waiting).jobs] == ["one.example"]
        assert (await client.get_host("one.example")).in_flight == 1
        assert (await client.clear_host_policy("one.example")).policy.pattern == "one.example"
