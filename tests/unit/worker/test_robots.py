"""robots.txt on the worker: parsed rules for our user agent, the cache of parsed versions, and the
gate's decisions for a lease (no sockets: the coordinator is a fake, and no lease here fetches)."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import pytest
from google.protobuf import timestamp_pb2

from crawlfleet.common.logs import job_log
from crawlfleet.common.robots import MAX_BODY_BYTES
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.context import JobContext
from crawlfleet.worker.errors import CoordinatorError, JobError
from crawlfleet.worker.pipeline.robots_fetch import RobotsFetch, robots_url
from crawlfleet.worker.pipeline.robots_rules import RobotsRules, RulesCache, RulesKey
from crawlfleet.worker.pipeline.settings import DEFAULT_USER_AGENT
from crawlfleet.worker.robots import MAX_CRAWL_DELAY_SENT, RobotsGate, report
from crawlfleet.worker.settings import WorkerSettings
from tests.unit.worker.fakes import lease_lost, rejected, unavailable

AGENT = DEFAULT_USER_AGENT
HOST = "shop.example"
RULES = b"""# shop.example
User-agent: *
Disallow: /

User-agent: CrawlFleet
Disallow: /private/
Allow: /private/open
Crawl-delay: 2.5

User-agent: otherbot
Disallow: /
"""


def test_our_group_is_matched_by_product_token_whatever_its_case() -> None:
    rules = RobotsRules.parse(RULES, AGENT)
    assert rules.allows(f"https://{HOST}/")
    assert rules.allows(f"https://{HOST}/shop?page=2")
    assert not rules.allows(f"https://{HOST}/private/x")
    assert rules.allows(f"https://{HOST}/private/open")  # the longest match wins (RFC 9309 §2.2.2)
    assert rules.crawl_delay == 2.5
    # A crawler with no group of its own gets the * group.
    assert not RobotsRules.parse(RULES, "somebot/1.0").allows(f"https://{HOST}/")


def test_a_file_without_rules_for_us_allows_everything() -> None:
    rules = RobotsRules.parse(b"User-agent: otherbot\nDisallow: /\n", AGENT)
    assert rules.allows(f"https://{HOST}/anything") and rules.crawl_delay is None
    assert RobotsRules.parse(b"", AGENT).allows(f"https://{HOST}/")
    assert RobotsRules.parse(b"\xff\xfe garbage \x00", AGENT).allows(f"https://{HOST}/")


def test_a_byte_order_mark_does_not_hide_the_first_line() -> None:
    rules = RobotsRules.parse(b"\xef\xbb\xbfUser-agent: *\nDisallow: /\n", AGENT)
    assert not rules.allows(f"https://{HOST}/")


def test_only_the_first_500_kib_are_read() -> None:
    padding = b"#" * (MAX_BODY_BYTES - 20) + b"\n"
    rules = RobotsRules.parse(padding + b"User-agent: *\nDisallow: /\n", AGENT)
    assert rules.allows(f"https://{HOST}/")


def test_the_cache_keeps_the_most_recently_used_versions() -> None:
    cache = RulesCache(size=2)
    a, b, c = (RulesKey(HOST, n) for n in (1, 2, 3))
    rules = RobotsRules.parse(RULES, AGENT)
    cache.put(a, rules)
    cache.put(b, rules)
    assert cache.get(a) is rules  # a is now the most recent
    cache.put(c, rules)
    assert (cache.get(a), cache.get(b), cache.get(c)) == (rules, None, rules)
    assert len(cache) == 2


def test_the_robots_txt_of_a_host_is_on_the_pages_scheme_and_port() -> None:
    assert robots_url("https://shop.example:8443/a/b?c", "shop.example:8443") == "https://shop.example:8443/robots.txt"
    assert robots_url("http://[2001:db8::1]/x", "[2001:db8::1]") == "http://[2001:db8::1]/robots.txt"


def test_a_report_carries_the_crawl_delay_within_a_duration() -> None:
    job = pb.LeasedJob(id=3, lease_token="t", host=pb.HostDirectives(name=HOST, fetch_robots=True))
    fetched = RobotsFetch(url=f"https://{HOST}/robots.txt", status=200, body=RULES)
    request = report(job, fetched, RobotsRules.parse(RULES, AGENT))
    assert (request.host, request.status_code, request.body) == (HOST, 200, RULES)
    assert request.crawl_delay.ToNanoseconds() == 2_500_000_000
    huge = RobotsRules.parse(b"User-agent: *\nCrawl-delay: 1e300\n", AGENT)
    assert report(job, fetched, huge).crawl_delay.seconds == MAX_CRAWL_DELAY_SENT
    failed = RobotsFetch(url="", status=0, error_type="timeout", error_message="slow")
    request = report(job, failed, None)
    assert (request.status_code, request.error_type, request.HasField("crawl_delay")) == (0, "timeout", False)


class FakeCoordinator:
    """GetRobots answers from `stored`, or raises the errors queued in `errors` first."""

    def __init__(self, stored: pb.GetRobotsResponse) -> None:
        self.stored = stored
        self.errors: list[CoordinatorError] = []
        self.lookups = 0

    async def report_robots(self, request: pb.ReportRobotsRequest) -> pb.ReportRobotsResponse:
        raise AssertionError("no lease here fetches robots.txt")

    async def get_robots(self, host: str) -> pb.GetRobotsResponse:
        self.lookups += 1
        if self.errors:
            raise self.errors.pop(0)
        assert host == HOST
        return self.stored


def version(seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds)


def leased(path: str, robots_version: int | None = 100, job_id: int = 1) -> pb.LeasedJob:
    directives = pb.HostDirectives(name=HOST)
    if robots_version is not None:
        directives.robots_version.CopyFrom(version(robots_version))
    spec = jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url=f"https://{HOST}{path}"))
    return pb.LeasedJob(id=job_id, kind="scrape", lease_token="t", spec=spec, host=directives)


@pytest.fixture
def ctx() -> Any:
    with ThreadPoolExecutor(1) as executor:
        log = job_log(logging.getLogger("test.robots"), pb.LeasedJob(id=1, kind="scrape"))
        # No pipeline resources: no lease in these tests fetches anything.
        yield JobContext(settings=WorkerSettings(worker_id="w"), resources=cast(Any, None), log=log, executor=executor)


def rules_answer(body: bytes = RULES, seconds: int = 100) -> pb.GetRobotsResponse:
    return pb.GetRobotsResponse(state=pb.ROBOTS_STATE_RULES, body=body, version=version(seconds))


async def check(gate: RobotsGate, job: pb.LeasedJob, ctx: JobContext) -> None:
    await gate.check(job, job.spec.scrape.url, ctx, timeout=5.0)


async def no_sleep(_: float) -> None:
    return None


async def short_sleep(_: float) -> None:
    await asyncio.sleep(0.01)  # the backoff's delay, shortened: patience runs out after a few tries


async def test_rules_of_a_version_are_looked_up_and_parsed_once(ctx: JobContext) -> None:
    coordinator = FakeCoordinator(rules_answer())
    gate = RobotsGate(coordinator, user_agent=AGENT)
    for n in range(5):
        await check(gate, leased(f"/page/{n}", job_id=n), ctx)
    assert coordinator.lookups == 1 and gate.cached_rules == 1
    with pytest.raises(JobError) as raised:
        await check(gate, leased("/private/x"), ctx)
    error = raised.value
    assert (error.error_type, error.retryable, error.release) == ("robots_disallowed", False, False)
    assert f"robots.txt of {HOST} disallows https://{HOST}/private/x" in str(error)
    assert coordinator.lookups == 1


async def test_a_newer_version_found_on_look_up_is_kept_for_both(ctx: JobContext) -> None:
    coordinator = FakeCoordinator(rules_answer(seconds=200))
    gate = RobotsGate(coordinator, user_agent=AGENT)
    await check(gate, leased("/a", robots_version=100), ctx)
    await check(gate, leased("/b", robots_version=200), ctx)
    await check(gate, leased("/c", robots_version=100), ctx)
    assert coordinator.lookups == 1 and gate.cached_rules == 2


async def test_a_lease_without_rules_is_not_checked(ctx: JobContext) -> None:
    coordinator = FakeCoordinator(rules_answer())
    gate = RobotsGate(coordinator, user_agent=AGENT)
    await check(gate, leased("/private/x", robots_version=None), ctx)  # allow-all, or not obeyed
    hostless = pb.LeasedJob(id=2, kind="scrape", spec=leased("/private/x").spec)
    await check(gate, hostless, ctx)
    assert coordinator.lookups == 0


@pytest.mark.parametrize("state", [pb.ROBOTS_STATE_ALLOW_ALL, pb.ROBOTS_STATE_UNKNOWN])
async def test_rules_gone_since_the_lease_allow_the_url(ctx: JobContext, state: pb.RobotsState.ValueType) -> None:
    gate = RobotsGate(FakeCoordinator(pb.GetRobotsResponse(state=state)), user_agent=AGENT)
    await check(gate, leased("/private/x"), ctx)


async def test_an_unreachable_robots_txt_gives_the_job_back(ctx: JobContext) -> None:
    gate = RobotsGate(FakeCoordinator(pb.GetRobotsResponse(state=pb.ROBOTS_STATE_UNREACHABLE)), user_agent=AGENT)
    with pytest.raises(JobError) as raised:
        await check(gate, leased("/page"), ctx)
    assert (raised.value.error_type, raised.value.release) == ("robots_unreachable", True)


async def test_a_coordinator_that_stays_unavailable_gives_the_job_back(ctx: JobContext) -> None:
    coordinator = FakeCoordinator(rules_answer())
    coordinator.errors = [unavailable()] * 1000
    gate = RobotsGate(coordinator, user_agent=AGENT, patience=0.05, sleep=short_sleep)
    with pytest.raises(JobError) as raised:
        await check(gate, leased("/page"), ctx)
    assert (raised.value.error_type, raised.value.release) == ("robots_unavailable", True)


async def test_a_passing_outage_is_retried(ctx: JobContext) -> None:
    coordinator = FakeCoordinator(rules_answer())
    coordinator.errors = [unavailable(), unavailable()]
    gate = RobotsGate(coordinator, user_agent=AGENT, sleep=no_sleep)
    await check(gate, leased("/page"), ctx)
    assert coordinator.lookups == 3


@pytest.mark.parametrize(("error", "error_type"), [(lease_lost("1"), "lease_lost"), (rejected(), "robots_refused")])
async def test_a_refused_call_fails_the_job_without_a_release(
    ctx: JobContext, error: CoordinatorError, error_type: str
) -> None:
    coordinator = FakeCoordinator(rules_answer())
    coordinator.errors = [error]
    gate = RobotsGate(coordinator, user_agent=AGENT, sleep=no_sleep)
    with pytest.raises(JobError) as raised:
        await check(gate, leased("/page"), ctx)
    assert (raised.value.error_type, raised.value.release) == (error_type, False)
