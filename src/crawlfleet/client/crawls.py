"""Crawls for both clients: the values they return, their requests, and one wait for a crawl.

``wait_crawl`` follows ``Crawls.WatchCrawl``: the coordinator looks at the crawl every
``interval`` and sends it when its counts change, and ends the stream when the crawl ends (a crawl
is finished when a coordinator's reaper sees none of its jobs queued or leased). ``CrawlWatch``
decides what each stream asks for, when to reopen one (a coordinator draining, a dropped
connection) and when to give up; the clients make the calls.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from enum import StrEnum
from typing import NamedTuple

import grpc

from crawlfleet.client.errors import ClientError, CrawlWaitTimeout, DeadlineExceeded, Unavailable, from_rpc_error
from crawlfleet.client.specs import Seconds, duration
from crawlfleet.client.watching import DEFAULT_RECONNECT_FOR, RECONNECT_CAP, RECONNECT_INITIAL
from crawlfleet.v1 import crawls_pb2

DEFAULT_CRAWL_PAGE_SIZE = 20
MAX_CRAWL_PAGE_SIZE = 100  # the coordinator's limit per ListCrawls call
# How often the coordinator looks at a crawl a wait follows: by default often enough for a live
# progress line; within the bounds WatchCrawl takes.
DEFAULT_WATCH_INTERVAL = 1.0
MIN_WATCH_INTERVAL = 0.2
MAX_WATCH_INTERVAL = 60.0
# Codes that end a stream that was up for reasons other than the request: a drain, a dropped
# connection, a coordinator stopped without grace.
_DROPPED = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL})
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


class CrawlWatch:
    """One ``wait_crawl``: the crawl as last seen, what the next stream asks for, when to give up.

    A failure before anything came (a wrong id, an unreachable coordinator, a token that may not)
    is the caller's at once. After that, a stream the coordinator ends early or that drops is
    reopened after a jittered backoff, for up to ``reconnect_for`` seconds without a message.
    """

    def __init__(
        self,
        crawl_id: int,
        *,
        timeout: Seconds | None = None,
        interval: Seconds = DEFAULT_WATCH_INTERVAL,
        reconnect_for: float = DEFAULT_RECONNECT_FOR,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        every = seconds(interval)
        if not MIN_WATCH_INTERVAL <= every <= MAX_WATCH_INTERVAL:
            bounds = f"{MIN_WATCH_INTERVAL:g} and {MAX_WATCH_INTERVAL:g} seconds"
            raise ValueError(f"interval must be between {bounds}, not {every:g}")
        limit = None if timeout is None else seconds(timeout)
        if limit is not None and limit < 0:
            raise ValueError(f"timeout must not be negative, not {limit:g}")
        self.crawl_id = crawl_id
        self.last: crawls_pb2.Crawl | None = None
        self._request = crawls_pb2.WatchCrawlRequest(crawl_id=crawl_id, interval=duration(every))
        self._timeout = limit
        self._clock = clock
        self._deadline = None if limit is None else clock() + limit
        self._reconnect_for = reconnect_for
        self._rng = rng or random.Random()
        self._failing_since: float | None = None
        self._failures = 0
        self._done = False

    @property
    def done(self) -> bool:
        """The crawl has ended: finished or cancelled."""
        return self._done

    def open_stream(self) -> tuple[crawls_pb2.WatchCrawlRequest, float | None]:
        """The request of the next stream and its deadline in seconds (None: none); raises
        ``CrawlWaitTimeout`` when the wait's time is up."""
        if self._deadline is None:
            return self._request, None
        left = self._deadline - self._clock()
        if left <= 0:
            raise self.timed_out()
        return self._request, left

    def absorb(self, response: crawls_pb2.WatchCrawlResponse) -> crawls_pb2.Crawl:
        """Records one message of the stream; the crawl in it."""
        self.last = response.crawl
        self._failing_since = None
        self._failures = 0
        self._done = crawl_state(response.crawl).is_terminal
        return response.crawl

    def stream_ended(self) -> float:
        """The stream ended without error; how long to wait before the next one (0 when the crawl
        ended, as the coordinator ends the stream then)."""
        if self._done:
            return 0.0
        return self._backoff(Unavailable("the coordinator ended the watch of the crawl early"))

    def retry_delay(self, error: grpc.RpcError) -> float:
        """How long to wait before watching again after a stream failed with ``error``; raises what
        the caller should see instead when watching again would not help."""
        translated = from_rpc_error(error)
        if isinstance(translated, DeadlineExceeded) and self._deadline is not None:
            raise self.timed_out() from error
        if self.last is None or translated.code not in _DROPPED:
            raise translated from error
        return self._backoff(translated)

    def timed_out(self) -> CrawlWaitTimeout:
        return CrawlWaitTimeout(self._timeout or 0.0, self.crawl_id, self.last)

    def _backoff(self, error: ClientError) -> float:
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        elif now - self._failing_since > self._reconnect_for:
            raise error
        bound = min(RECONNECT_CAP, RECONNECT_INITIAL * 2 ** min(self._failures, 32))
        self._failures += 1
        delay = self._rng.uniform(0, bound)
        if self._deadline is not None:
            delay = min(delay, max(0.0, self._deadline - now))
        return delay
