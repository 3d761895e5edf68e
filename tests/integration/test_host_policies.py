"""SetHostPolicy, ClearHostPolicy and ListHostPolicies: what they store and answer, which hosts a
pattern governs, and that claims follow a policy at once."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from crawlfleet.v1 import admin_pb2
from tests.conftest import RunningCoordinator
from tests.helpers import error_info, lease_request, scrape, seconds
from tests.integration.jobs import complete, enqueue
from tests.integration.test_hosts import get_host, invalid_field


async def set_policy(coord: RunningCoordinator, pattern: str, **fields: Any) -> admin_pb2.SetHostPolicyResponse:
    return await coord.admin.SetHostPolicy(admin_pb2.SetHostPolicyRequest(pattern=pattern, **fields))


async def clear_policy(coord: RunningCoordinator, pattern: str) -> admin_pb2.ClearHostPolicyResponse:
    return await coord.admin.ClearHostPolicy(admin_pb2.ClearHostPolicyRequest(pattern=pattern))


async def patterns(coord: RunningCoordinator, page_size: int = 0) -> list[str]:
    """Every policy's pattern, page after page."""
    found: list[str] = []
    token = ""
    while True:
        page = await coord.admin.ListHostPolicies(
            admin_pb2.ListHostPoliciesRequest(page_size=page_size, page_token=token)
        )
        found += [p.pattern for p in page.policies]
        token = page.next_page_token
        if not token:
            return found


async def test_set_stores_and_answers_the_policy(coord: RunningCoordinator) -> None:
    await enqueue(coord, scrape("http://shop.example/"), scrape("http://www.shop.example/"), scrape("http://x.test/"))
    answer = await set_policy(
        coord, "*.shop.example", max_concurrency=4, delay=seconds(1.5), obey_robots=True, note="an agreement"
    )
    policy = answer.policy
    assert answer.hosts_governed == 2  # the domain itself and www.
    assert (policy.pattern, policy.max_concurrency, policy.delay.ToMilliseconds()) == ("*.shop.example", 4, 1500)
    assert policy.obey_robots and policy.note == "an agreement" and policy.HasField("updated_at")
    host = await get_host(coord, "www.shop.example")
    assert (host.policy_pattern, host.max_concurrency, host.delay.ToMilliseconds(), host.obey_robots) == (
        "*.shop.example",
        4,
        1500,
        True,
    )
    # Set again: the pattern's policy is replaced, unset limits taking the fleet defaults.
    again = (await set_policy(coord, "*.shop.example", max_concurrency=1)).policy
    assert again.HasField("max_concurrency") and not again.HasField("delay") and not again.HasField("obey_robots")
    assert again.note == ""
    host = await get_host(coord, "shop.example")
    assert (host.max_concurrency, host.delay.ToMilliseconds(), host.obey_robots) == (1, 0, False)  # test defaults


async def test_the_most_specific_pattern_governs(coord: RunningCoordinator) -> None:
    await enqueue(coord, *(scrape(f"http://{h}/") for h in ("a.shop.example", "b.shop.example", "shop.example")))
    assert (await set_policy(coord, "*.shop.example", max_concurrency=5)).hosts_governed == 3
    assert (await set_policy(coord, "a.shop.example", max_concurrency=1)).hosts_governed == 1
    assert (await get_host(coord, "a.shop.example")).max_concurrency == 1
    assert (await get_host(coord, "b.shop.example")).policy_pattern == "*.shop.example"
    # A policy for a host not seen yet governs it from its first job on.
    assert (await set_policy(coord, "later.example", delay=seconds(2))).hosts_governed == 0
    await enqueue(coord, scrape("http://later.example/"))
    assert (await get_host(coord, "later.example")).delay.ToSeconds() == 2
    # Clearing the exact one hands its host back to the domain's.
    cleared = await clear_policy(coord, "a.shop.example")
    assert (cleared.policy.pattern, cleared.policy.max_concurrency, cleared.hosts_released) == ("a.shop.example", 1, 1)
    assert (await get_host(coord, "a.shop.example")).max_concurrency == 5
    assert await patterns(coord, page_size=1) == ["*.shop.example", "later.example"]


async def test_clearing_a_pattern_without_a_policy_is_not_found(coord: RunningCoordinator) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await clear_policy(coord, "none.example")
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    assert error_info(missing.value).reason == "HOST_POLICY_NOT_FOUND"
    assert error_info(missing.value).metadata["pattern"] == "none.example"


async def test_policies_page_in_pattern_order(coord: RunningCoordinator) -> None:
    names = [f"h{n}.example" for n in range(7)] + ["*.example", "[::1]:8080", "127.0.0.1:8443"]
    for name in names:
        await set_policy(coord, name, max_concurrency=2)
    assert sorted(await patterns(coord, page_size=3)) == sorted(names)
    assert await patterns(coord) == await patterns(coord, page_size=2)


BAD_POLICIES: list[tuple[str, dict[str, Any], str]] = [
    ("no pattern", {"pattern": ""}, "pattern"),
    ("a URL", {"pattern": "https://shop.example/"}, "pattern"),
    ("upper case", {"pattern": "Shop.Example"}, "pattern"),
    ("wildcard inside", {"pattern": "shop.*.example"}, "pattern"),
    ("bare wildcard", {"pattern": "*"}, "pattern"),
    ("long pattern", {"pattern": "a" * 256}, "pattern"),
    ("zero concurrency", {"pattern": "a.example", "max_concurrency": 0}, "max_concurrency"),
    ("huge concurrency", {"pattern": "a.example", "max_concurrency": 10_001}, "max_concurrency"),
    ("negative delay", {"pattern": "a.example", "delay": seconds(-1)}, "delay"),
    ("delay over a day", {"pattern": "a.example", "delay": seconds(86_401)}, "delay"),
    ("long note", {"pattern": "a.example", "note": "n" * 501}, "note"),
]


@pytest.mark.parametrize(("fields", "field"), [(f, n) for _, f, n in BAD_POLICIES], ids=[c for c, _, _ in BAD_POLICIES])
async def test_bad_policies_name_their_field(coord: RunningCoordinator, fields: dict[str, Any], field: str) -> None:
    assert await invalid_field(coord.admin.SetHostPolicy(admin_pb2.SetHostPolicyRequest(**fields))) == field


async def test_bad_clears_and_tokens_name_their_field(coord: RunningCoordinator) -> None:
    assert await invalid_field(clear_policy(coord, "not a pattern")) == "pattern"
    listing = admin_pb2.ListHostPoliciesRequest(page_token="no/token")
    assert await invalid_field(coord.admin.ListHostPolicies(listing)) == "page_token"
    oversized = admin_pb2.ListHostPoliciesRequest(page_size=1001)
    assert await invalid_field(coord.admin.ListHostPolicies(oversized)) == "page_size"


async def lease_ids(coord: RunningCoordinator, worker: str) -> list[int]:
    return [j.id for j in (await coord.queue.Lease(lease_request(worker_id=worker, max_jobs=10))).jobs]


async def test_a_claim_follows_a_policy_at_once_and_its_clearing(coord: RunningCoordinator) -> None:
    """The tests' fleet defaults are unthrottled; a policy of one lease at a time holds the host to
    one job in flight, and clearing it lets the rest go at once."""
    ids = await enqueue(coord, *(scrape(f"http://one.example/{n}") for n in range(4)))
    other = await enqueue(coord, scrape("http://other.example/"))
    await set_policy(coord, "one.example", max_concurrency=1)
    first = (await coord.queue.Lease(lease_request(worker_id="w1", max_jobs=10))).jobs
    assert sorted(j.id for j in first) == sorted([ids[0], *other])  # one of one.example's, and the other host's
    assert await lease_ids(coord, "w2") == []  # one.example is at its limit
    assert (await get_host(coord, "one.example")).saturated
    await clear_policy(coord, "one.example")
    assert sorted(await lease_ids(coord, "w2")) == ids[1:]
    for job in first:
        await complete(coord, job)


async def test_a_policy_delay_spaces_lease_starts(coord: RunningCoordinator) -> None:
    await enqueue(coord, *(scrape(f"http://slow.example/{n}") for n in range(3)))
    await set_policy(coord, "slow.example", delay=seconds(3600))
    assert len(await lease_ids(coord, "w1")) == 1  # one start, then an hour's wait
    assert await lease_ids(coord, "w2") == []
    host = await get_host(coord, "slow.example")
    assert host.delay.ToSeconds() == 3600 and host.ready_at.ToSeconds() - host.last_lease_at.ToSeconds() >= 3599
    # A shorter delay applies from the next start: the wait already begun runs out first.
    await set_policy(coord, "slow.example", delay=seconds(0))
    assert await lease_ids(coord, "w2") == []
