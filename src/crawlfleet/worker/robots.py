"""Obeying robots.txt (RFC 9309) for the fleet, before a job fetches its URL.

What the lease says decides (HostDirectives, docs/politeness.md "robots.txt"):

- ``fetch_robots``: the fleet does not know the host's robots.txt (or it is stale). This lease
  fetches it, reports it (ReportRobots) for every worker, then decides for its own URL. The host's
  other jobs wait for the report.
- ``robots_version``: the host has rules of that version. They are parsed once per worker and
  version (a small LRU) and looked up (GetRobots) the first time.
- neither: the host has no rules to obey (its robots.txt allows all, or it is not obeyed there).

A URL the rules disallow fails its job as ``robots_disallowed``, not retryable: the coordinator
ends it skipped, never dead. An unreachable robots.txt gives the job back uncharged (release): the
coordinator paused the host, and the job runs once a later fetch succeeds. Only the job's own URL
is checked: not the redirects it leads to, nor what a browser render loads beside it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from crawlfleet.common.robots import DISALLOWED_ERROR_TYPE, RobotsState
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.worker.backoff import Backoff
from crawlfleet.worker.client import duration
from crawlfleet.worker.errors import CoordinatorError, CoordinatorUnavailable, JobError, LeaseLost
from crawlfleet.worker.pipeline.robots_rules import DEFAULT_CACHE_SIZE, RobotsRules, RulesCache, RulesKey
from crawlfleet.worker.reporting import MAX_ERROR_MESSAGE, GaveUp, Sleep, retry_transient

if TYPE_CHECKING:
    from crawlfleet.worker.context import JobContext
    from crawlfleet.worker.pipeline.robots_fetch import RobotsFetch

# How long a report or look-up keeps retrying a coordinator that is unavailable; then the job is
# given back (a retry of the whole job costs one robots.txt fetch, not a page).
CALL_PATIENCE_SECONDS = 10.0
# A Crawl-delay is sent at most this long (the coordinator caps it far lower): any number fits a
# Duration this way.
MAX_CRAWL_DELAY_SENT = 24 * 3600.0
UNREACHABLE_ERROR_TYPE = "robots_unreachable"
_T = TypeVar("_T")


class RobotsClient(Protocol):
    """What the gate needs of the coordinator client."""

    async def report_robots(self, request: pb.ReportRobotsRequest) -> pb.ReportRobotsResponse: ...

    async def get_robots(self, host: str) -> pb.GetRobotsResponse: ...


class RobotsGate:
    """One per worker: decides whether a job may fetch its URL, and keeps the rules it parsed."""

    def __init__(
        self,
        client: RobotsClient,
        *,
        user_agent: str,
        cache_size: int = DEFAULT_CACHE_SIZE,
        patience: float = CALL_PATIENCE_SECONDS,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._client = client
        self._user_agent = user_agent
        self._cache = RulesCache(cache_size)
        self._patience = patience
        self._sleep = sleep

    @property
    def cached_rules(self) -> int:
        """Versions of rules parsed and kept."""
        return len(self._cache)

    async def check(self, job: pb.LeasedJob, url: str, ctx: JobContext, *, timeout: float) -> None:
        """Return if robots.txt lets `job` fetch `url`; raise JobError if it disallows it (not
        retryable) or cannot be had (release)."""
        if not job.HasField("host"):
            return
        directives = job.host
        if directives.fetch_robots:
            rules = await self._fetch_and_report(job, url, ctx, timeout)
        elif directives.HasField("robots_version"):
            rules = await self._rules_of(directives.name, directives.robots_version.ToNanoseconds(), ctx)
        else:
            return
        if rules is not None and not rules.allows(url):
            raise JobError(
                f"robots.txt of {directives.name} disallows {url} for {self._user_agent!r}",
                error_type=DISALLOWED_ERROR_TYPE,
                retryable=False,
            )

    async def _fetch_and_report(
        self, job: pb.LeasedJob, url: str, ctx: JobContext, timeout: float
    ) -> RobotsRules | None:
        # Imported here: it brings in the HTTP client, which a worker of no-op jobs never loads.
        from crawlfleet.worker.pipeline.robots_fetch import fetch_robots, robots_url

        host = job.host.name
        fetched = await fetch_robots(ctx.resources.fetcher, robots_url(url, host), timeout=timeout)
        rules = await ctx.run_blocking(RobotsRules.parse, fetched.body, self._user_agent) if fetched.found else None
        answer = await self._call(lambda: self._client.report_robots(report(job, fetched, rules)), "report")
        state = RobotsState.from_proto(answer.state)
        ctx.log.info("robots.txt of %s: %s (%s)", host, state.value, fetched.describe())
        if state is RobotsState.UNREACHABLE:
            raise unreachable(host, fetched.describe())
        if state is not RobotsState.RULES:
            return None
        if rules is None:  # the coordinator found rules where this worker saw none: its word counts
            rules = await ctx.run_blocking(RobotsRules.parse, fetched.body, self._user_agent)
        self._cache.put(RulesKey(host, answer.version.ToNanoseconds()), rules)
        return rules

    async def _rules_of(self, host: str, version_ns: int, ctx: JobContext) -> RobotsRules | None:
        key = RulesKey(host, version_ns)
        rules = self._cache.get(key)
        if rules is not None:
            return rules
        answer = await self._call(lambda: self._client.get_robots(host), "look-up")
        state = RobotsState.from_proto(answer.state)
        if state is RobotsState.UNREACHABLE:  # refetched since this lease was granted, and failed
            raise unreachable(host, "as last fetched")
        if state is not RobotsState.RULES:
            return None
        rules = await ctx.run_blocking(RobotsRules.parse, answer.body, self._user_agent)
        # Kept under both versions: a newer one fetched since the lease is the one to obey.
        self._cache.put(key, rules)
        self._cache.put(RulesKey(host, answer.version.ToNanoseconds()), rules)
        return rules

    async def _call(self, op: Callable[[], Awaitable[_T]], what: str) -> _T:
        """`op`, retried while the coordinator is unavailable and patience lasts; a failure that
        is not the job's fault gives it back."""
        deadline = time.monotonic() + self._patience
        try:
            return await retry_transient(
                op, keep_trying=lambda: time.monotonic() < deadline, backoff=Backoff(), sleep=self._sleep
            )
        except (GaveUp, CoordinatorUnavailable) as exc:
            raise JobError(
                f"the robots.txt {what} did not reach the coordinator: {exc}",
                error_type="robots_unavailable",
                retryable=True,
                release=True,
            ) from exc
        except LeaseLost as exc:
            raise JobError(f"lease lost before the robots.txt {what}", error_type="lease_lost", retryable=True) from exc
        except CoordinatorError as exc:
            raise JobError(
                f"the coordinator refused the robots.txt {what}: {exc.message}",
                error_type="robots_refused",
                retryable=True,
            ) from exc


def report(job: pb.LeasedJob, fetched: RobotsFetch, rules: RobotsRules | None) -> pb.ReportRobotsRequest:
    """The ReportRobots call of a fetch (the Crawl-delay for our agent from its rules)."""
    request = pb.ReportRobotsRequest(
        job_id=job.id,
        lease_token=job.lease_token,
        host=job.host.name,
        status_code=fetched.status,
        body=fetched.body,
        error_type=fetched.error_type,
        error_message=fetched.error_message[:MAX_ERROR_MESSAGE],
    )
    delay = rules.crawl_delay if rules is not None else None
    if delay is not None:
        request.crawl_delay.CopyFrom(duration(min(delay, MAX_CRAWL_DELAY_SENT)))
    return request


def unreachable(host: str, why: str) -> JobError:
    """The job cannot run while its host's robots.txt is unreachable (RFC 9309 §2.3.1.4: complete
    disallow); it is given back uncharged and runs after the host's pause."""
    return JobError(
        f"robots.txt of {host} is unreachable ({why}): the host is paused until it can be fetched",
        error_type=UNREACHABLE_ERROR_TYPE,
        retryable=True,
        release=True,
    )
