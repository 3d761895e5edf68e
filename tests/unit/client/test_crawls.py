"""Crawls in the client library: what a producer passes becomes a CrawlSpec message, and
``wait_crawl``'s watch asks for its interval, reopens streams that drop and stops at its timeout."""

from __future__ import annotations

import datetime as dt
import random

import grpc
import pytest

from crawlfleet.client import (
    CrawlSpec,
    CrawlState,
    CrawlWaitTimeout,
    NotFound,
    RetryPolicy,
    Unavailable,
    WaitTimeout,
)
from crawlfleet.client.crawl_specs import crawl_spec
from crawlfleet.client.crawls import CancelledCrawl, CrawlWatch, list_crawls_request
from crawlfleet.client.watching import RECONNECT_CAP
from crawlfleet.v1 import crawls_pb2, jobs_pb2
from tests.helpers import seconds
from tests.unit.client.rpc import rpc_error


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def running(queued: int = 1, leased: int = 0) -> crawls_pb2.Crawl:
    return crawls_pb2.Crawl(id=7, state=crawls_pb2.CRAWL_STATE_RUNNING, queued=queued, leased=leased)


def test_a_crawl_spec_carries_every_option() -> None:
    spec = CrawlSpec(
        seeds=["https://shop.example/", "https://shop.example/sale"],
        scope="same-domain",
        allow=["https://shop.example/*"],
        deny=["*/cart*"],
        max_depth=0,
        max_pages=500,
        max_pages_per_host=100,
        max_query_variants=10,
        drop_tracking_parameters=True,
        sort_query=True,
        sitemaps=True,
        render="browser",
        follow=["main", "nav.pages"],
        timeout=dt.timedelta(seconds=20),
        skip_images=True,
        max_images=4,
        priority=60,
        retry=RetryPolicy(maximum_attempts=3),
    ).to_proto()
    assert list(spec.seeds) == ["https://shop.example/", "https://shop.example/sale"]
    assert spec.scope == crawls_pb2.CRAWL_SCOPE_SAME_DOMAIN
    assert list(spec.allow) == ["https://shop.example/*"] and list(spec.deny) == ["*/cart*"]
    assert spec.HasField("max_depth") and spec.max_depth == 0  # 0 is "the seeds only", not unset
    assert (spec.max_pages, spec.max_pages_per_host, spec.max_query_variants) == (500, 100, 10)
    assert spec.drop_tracking_parameters and spec.sort_query and spec.sitemaps
    assert spec.page.render == jobs_pb2.RENDER_MODE_BROWSER and list(spec.page.follow_selectors) == [
        "main",
        "nav.pages",
    ]
    assert spec.page.timeout.seconds == 20 and spec.page.skip_images and spec.page.max_images == 4
    assert spec.priority == 60 and spec.retry_policy.maximum_attempts == 3


def test_unset_options_leave_the_coordinators_defaults() -> None:
    spec = CrawlSpec(seeds=["https://a.example/"]).to_proto()
    assert not spec.HasField("max_depth") and spec.max_pages == 0 and spec.scope == crawls_pb2.CRAWL_SCOPE_UNSPECIFIED
    assert spec.page.render == jobs_pb2.RENDER_MODE_UNSPECIFIED and not spec.HasField("retry_policy")


def test_what_start_crawl_takes() -> None:
    assert list(crawl_spec("https://a.example/").seeds) == ["https://a.example/"]
    assert list(crawl_spec(["https://a.example/", "https://b.example/"]).seeds) == [
        "https://a.example/",
        "https://b.example/",
    ]
    message = crawls_pb2.CrawlSpec(seeds=["https://c.example/"], max_pages=3)
    assert crawl_spec(message) is message
    with pytest.raises(TypeError):
        crawl_spec(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        CrawlSpec(seeds="https://a.example/").to_proto()
    with pytest.raises(ValueError, match="scope must be one of"):
        CrawlSpec(seeds=["https://a.example/"], scope="same-planet").to_proto()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="page_size must be between 1 and 100"):
        list_crawls_request(101, "")


def test_states_and_cancel_outcomes_come_from_the_api() -> None:
    assert CrawlState.from_proto(crawls_pb2.CRAWL_STATE_FINISHED) is CrawlState.FINISHED
    assert CrawlState("finished") is CrawlState.FINISHED and str(CrawlState.FINISHED) == "finished"
    assert CrawlState.CANCELLED.is_terminal and not CrawlState.RUNNING.is_terminal
    with pytest.raises(ValueError):
        CrawlState.from_proto(crawls_pb2.CRAWL_STATE_UNSPECIFIED)
    response = crawls_pb2.CancelCrawlResponse(state=crawls_pb2.CRAWL_STATE_CANCELLED, cancelled_jobs=4, stopping_jobs=2)
    assert CancelledCrawl.from_proto(response) == (CrawlState.CANCELLED, 4, 2)


def response(crawl: crawls_pb2.Crawl) -> crawls_pb2.WatchCrawlResponse:
    return crawls_pb2.WatchCrawlResponse(crawl=crawl)


def test_a_watch_asks_for_its_interval_and_ends_with_the_crawl() -> None:
    clock = Clock()
    watch = CrawlWatch(7, interval=2.0, clock=clock)
    request, deadline = watch.open_stream()
    assert request.crawl_id == 7 and request.interval.seconds == 2 and deadline is None
    assert watch.absorb(response(running())).queued == 1 and not watch.done
    done = crawls_pb2.Crawl(id=7, state=crawls_pb2.CRAWL_STATE_FINISHED)
    watch.absorb(response(done))
    assert watch.done and watch.last == done and watch.stream_ended() == 0.0
    cancelled = CrawlWatch(7, clock=clock)
    cancelled.absorb(response(crawls_pb2.Crawl(id=7, state=crawls_pb2.CRAWL_STATE_CANCELLED)))
    assert cancelled.done


def test_the_interval_is_bounded_and_the_timeout_not_negative() -> None:
    for interval in (0.0, 0.1, 61.0, dt.timedelta(minutes=2)):
        with pytest.raises(ValueError, match="interval"):
            CrawlWatch(7, interval=interval)
    with pytest.raises(ValueError, match="timeout"):
        CrawlWatch(7, timeout=-1)


def test_streams_get_the_time_left_then_the_wait_times_out() -> None:
    clock = Clock()
    watch = CrawlWatch(7, timeout=5.0, clock=clock)
    assert watch.open_stream()[1] == 5.0
    watch.absorb(response(running(queued=3, leased=2)))
    clock.now += 4.0
    assert watch.open_stream()[1] == pytest.approx(1.0)
    clock.now += 1.0
    expired = rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    with pytest.raises(CrawlWaitTimeout) as caught:
        watch.retry_delay(expired)
    assert isinstance(caught.value, WaitTimeout) and caught.value.remaining == 5
    assert caught.value.crawl == watch.last and caught.value.crawl_id == 7
    assert "crawl 7 had not finished after 5s (5 job(s) queued or leased)" in str(caught.value)
    with pytest.raises(CrawlWaitTimeout):
        watch.open_stream()


def test_a_failure_before_the_first_message_is_the_callers_error() -> None:
    watch = CrawlWatch(7)
    with pytest.raises(Unavailable):
        watch.retry_delay(rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused"))
    watch.absorb(response(running()))
    missing = rpc_error(grpc.StatusCode.NOT_FOUND, "crawl 7 does not exist", "CRAWL_NOT_FOUND")
    with pytest.raises(NotFound):
        watch.retry_delay(missing)


def test_a_dropped_or_drained_stream_is_reopened_for_a_while() -> None:
    clock = Clock()
    watch = CrawlWatch(7, reconnect_for=30.0, clock=clock, rng=random.Random(1))
    watch.absorb(response(running()))
    draining = rpc_error(grpc.StatusCode.UNAVAILABLE, "draining", "DRAINING")
    delays = [watch.retry_delay(draining)]
    clock.now += 29.0
    delays.append(watch.stream_ended())  # a stream ended early: the same allowance
    assert all(0 <= d <= RECONNECT_CAP for d in delays)
    watch.absorb(response(running()))  # a message starts the allowance again
    clock.now += 29.0
    watch.retry_delay(draining)
    clock.now += 31.0
    with pytest.raises(Unavailable):
        watch.retry_delay(draining)


def test_a_crawls_politeness_becomes_its_message() -> None:
    spec = crawl_spec(CrawlSpec(seeds=["https://shop.example/"], host_concurrency=1, host_delay=2.5, obey_robots=True))
    assert spec.politeness == crawls_pb2.CrawlPoliteness(max_concurrency=1, delay=seconds(2.5), obey_robots=True)
    assert not crawl_spec(CrawlSpec(seeds=["https://shop.example/"])).HasField("politeness")
    ignoring = crawl_spec(CrawlSpec(seeds=["https://shop.example/"], obey_robots=False))
    assert ignoring.politeness.HasField("obey_robots") and not ignoring.politeness.obey_robots
