"""Crawls for both clients: the values they return, their requests, and how waiting for a crawl polls.

A crawl is finished when none of its jobs is queued or leased, which the coordinators notice at
their reaper's tick; there is no stream of crawl events, so ``wait_crawl`` reads the crawl again
at a bounded interval. ``CrawlWait`` decides when, and when to give up; the clients make the calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum
from typing import NamedTuple

from crawlfleet.client.errors import ClientError, CrawlWaitTimeout, Unavailable
from crawlfleet.client.specs import Seconds
from crawlfleet.client.watching import DEFAULT_RECONNECT_FOR
from crawlfleet.v1 import crawls_pb2

DEFAULT_CRAWL_PAGE_SIZE = 20
MAX_CRAWL_PAGE_SIZE = 100  # the coordinator's limit per ListCrawls call
# wait_crawl reads the crawl this often by default, and within these bounds: often enough for a
# live progress line, seldom enough that many waiting scripts do not load the coordinator.
DEFAULT_POLL_INTERVAL = 1.0
MIN_POLL_INTERVAL = 0.05
MAX_POLL_INTERVAL = 60.0
_PROTO_PREFIX = "CRAWL_STATE_"

Clock = Callable[[], float]


class CrawlState(StrEnum):
    """Where a crawl is: RUNNING (jobs queued or leased), FINISHED (none left) or CANCELLED."""

    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self is not CrawlState.RUNNING

    @classmethod
    def from_proto(cls, value: int) -> CrawlState:
        """``CRAWL_STATE_FINISHED`` -> ``CrawlState.FINISHED``; ``ValueError`` for UNSPECIFIED or unknown values."""
        if value == crawls_pb2.CRAWL_STATE_UNSPECIFIED or value not in crawls_pb2.CrawlState.values():
            raise ValueError(f"not a crawl state: {value}")
        return cls[crawls_pb2.CrawlState.Name(crawls_pb2.CrawlState.ValueType(value)).removeprefix(_PROTO_PREFIX)]


class StartedCrawl(NamedTuple):
    """A crawl just started: its id, and how many of its seeds were enqueued (a repeated seed, or
    one the patterns refuse, is not)."""

    id: int
    seeds_enqueued: int


class CrawlPage(NamedTuple):
    """One page of ``list_crawls``, newest first (the crawls without job counts, errors and depths:
    ``get_crawl`` has them); pass ``next_page_token`` for the next (empty: no more)."""

    crawls: list[crawls_pb2.Crawl]
    next_page_token: str


class CancelledCrawl(NamedTuple):
    """What ``cancel_crawl`` did: the crawl's state after (CANCELLED, or FINISHED when it had
    finished before), its queued jobs cancelled now, and its leased jobs asked to stop (they end at
    their next heartbeat)."""

    state: CrawlState
    cancelled_jobs: int
    stopping_jobs: int

    @classmethod
    def from_proto(cls, response: crawls_pb2.CancelCrawlResponse) -> CancelledCrawl:
        return cls(CrawlState.from_proto(response.state), response.cancelled_jobs, response.stopping_jobs)


def crawl_state(crawl: crawls_pb2.Crawl) -> CrawlState:
    """The state of a crawl message."""
    return CrawlState.from_proto(crawl.state)


def list_crawls_request(page_size: int, page_token: str) -> crawls_pb2.ListCrawlsRequest:
    if not 1 <= page_size <= MAX_CRAWL_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_CRAWL_PAGE_SIZE}, not {page_size}")
    return crawls_pb2.ListCrawlsRequest(page_size=page_size, page_token=page_token)


def crawl_page(response: crawls_pb2.ListCrawlsResponse) -> CrawlPage:
    return CrawlPage(list(response.crawls), response.next_page_token)


def seconds(value: Seconds) -> float:
    return value if isinstance(value, int | float) else value.total_seconds()


class CrawlWait:
    """One ``wait_crawl``: the crawl as last read, when to read it again, when to give up.

    The first read happens at once and its failure is the caller's (a wrong id, an unreachable
    coordinator). After that, a read the coordinator could not answer (draining, restarting, a
    dropped connection) is tried again at the next interval, for up to ``reconnect_for`` seconds.
    """

    def __init__(
        self,
        crawl_id: int,
        *,
        timeout: Seconds | None = None,
        poll_interval: Seconds = DEFAULT_POLL_INTERVAL,
        reconnect_for: float = DEFAULT_RECONNECT_FOR,
        clock: Clock = time.monotonic,
    ) -> None:
        interval = seconds(poll_interval)
        if not MIN_POLL_INTERVAL <= interval <= MAX_POLL_INTERVAL:
            bounds = f"{MIN_POLL_INTERVAL:g} and {MAX_POLL_INTERVAL:g} seconds"
            raise ValueError(f"poll_interval must be between {bounds}, not {interval:g}")
        limit = None if timeout is None else seconds(timeout)
        if limit is not None and limit < 0:
            raise ValueError(f"timeout must not be negative, not {limit:g}")
        self.crawl_id = crawl_id
        self.last: crawls_pb2.Crawl | None = None
        self._interval = interval
        self._timeout = limit
        self._clock = clock
        self._deadline = None if limit is None else clock() + limit
        self._reconnect_for = reconnect_for
        self._failing_since: float | None = None

    def absorb(self, crawl: crawls_pb2.Crawl) -> bool:
        """Records a read of the crawl; True when it has ended (finished or cancelled)."""
        self.last = crawl
        self._failing_since = None
        return crawl_state(crawl).is_terminal

    def failed(self, error: ClientError) -> None:
        """A read failed: returns when reading again may help, raises ``error`` otherwise."""
        if self.last is None or not isinstance(error, Unavailable):
            raise error
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        elif now - self._failing_since > self._reconnect_for:
            raise error

    def next_delay(self) -> float:
        """Seconds until the next read; raises ``CrawlWaitTimeout`` when the time is up (the last
        read falls on the deadline)."""
        if self._deadline is None:
            return self._interval
        left = self._deadline - self._clock()
        if left <= 0:
            raise CrawlWaitTimeout(self._timeout or 0.0, self.crawl_id, self.last)
        return min(self._interval, left)
