"""crawlfleet.v1.Crawls: start a crawl, follow its progress, list and cancel crawls.

Producers see and cancel only the crawls they started; admins all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from crawlfleet.coordinator.api import convert
from crawlfleet.coordinator.api.crawl_report import crawl_message
from crawlfleet.coordinator.api.crawl_validation import check_politeness_role, validate_crawl
from crawlfleet.coordinator.api.job_queue import Lifecycle
from crawlfleet.coordinator.api.status import handles_errors, handles_stream_errors
from crawlfleet.coordinator.errors import CrawlNotFound, Draining, InvalidArgument
from crawlfleet.coordinator.security.principal import caller_name, current_principal, visible_owner
from crawlfleet.coordinator.settings import CoordinatorSettings
from crawlfleet.coordinator.storage.crawls import CrawlStore
from crawlfleet.coordinator.wakeup import LeaseWakeup
from crawlfleet.v1 import crawls_pb2 as pb
from crawlfleet.v1 import crawls_pb2_grpc

Ctx = grpc.aio.ServicerContext
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
DEFAULT_WATCH_INTERVAL = 1.0
MIN_WATCH_INTERVAL = 0.2
MAX_WATCH_INTERVAL = 60.0


class CrawlsServicer(crawls_pb2_grpc.CrawlsServicer):
    def __init__(
        self, crawls: CrawlStore, wakeup: LeaseWakeup, settings: CoordinatorSettings, lifecycle: Lifecycle
    ) -> None:
        self._crawls = crawls
        self._wakeup = wakeup
        self._settings = settings
        self._lifecycle = lifecycle

    @handles_errors
    async def StartCrawl(self, request: pb.StartCrawlRequest, context: Ctx) -> pb.StartCrawlResponse:  # type: ignore[type-arg]
        spec, limits = validate_crawl(request.spec, "spec", self._settings)
        check_politeness_role(spec, "spec", self._settings.politeness, current_principal())
        started = await self._crawls.start(spec, limits, owner=caller_name())
        self._wakeup.notify()
        return pb.StartCrawlResponse(crawl_id=started.crawl_id, seeds_enqueued=started.seeds_enqueued)

    @handles_errors
    async def RefreshCrawl(self, request: pb.RefreshCrawlRequest, context: Ctx) -> pb.RefreshCrawlResponse:  # type: ignore[type-arg]
        crawl_id = convert.positive_id(request.crawl_id, "crawl_id")
        started = await self._crawls.refresh(crawl_id, owner=visible_owner())
        if started is None:
            raise CrawlNotFound(crawl_id)
        self._wakeup.notify()
        return pb.RefreshCrawlResponse(crawl_id=started.crawl_id, seeds_enqueued=started.seeds_enqueued)

    @handles_errors
    async def GetCrawl(self, request: pb.GetCrawlRequest, context: Ctx) -> pb.GetCrawlResponse:  # type: ignore[type-arg]
        crawl_id = convert.positive_id(request.crawl_id, "crawl_id")
        report = await self._crawls.report(crawl_id, owner=visible_owner())
        if report is None:
            raise CrawlNotFound(crawl_id)
        return pb.GetCrawlResponse(crawl=crawl_message(report.crawl, report))

    @handles_stream_errors
    async def WatchCrawl(self, request: pb.WatchCrawlRequest, context: Ctx) -> AsyncIterator[pb.WatchCrawlResponse]:  # type: ignore[type-arg]
        crawl_id = convert.positive_id(request.crawl_id, "crawl_id")
        interval = convert.seconds(request.interval) if request.HasField("interval") else DEFAULT_WATCH_INTERVAL
        if not MIN_WATCH_INTERVAL <= interval <= MAX_WATCH_INTERVAL:
            raise InvalidArgument("interval", f"must be between {MIN_WATCH_INTERVAL} and {MAX_WATCH_INTERVAL} seconds")
        owner = visible_owner()
        last: pb.Crawl | None = None
        while True:
            if self._lifecycle.draining:
                raise Draining()
            report = await self._crawls.report(crawl_id, owner=owner)
            if report is None:
                raise CrawlNotFound(crawl_id)
            crawl = crawl_message(report.crawl, report)
            crawl.pages_per_second = 0.0  # it moves every second; only a change of counts is news
            if crawl != last:
                yield pb.WatchCrawlResponse(crawl=crawl_message(report.crawl, report))
                last = crawl
            if crawl.state != pb.CRAWL_STATE_RUNNING:
                return
            await asyncio.sleep(interval)

    @handles_errors
    async def ListCrawls(self, request: pb.ListCrawlsRequest, context: Ctx) -> pb.ListCrawlsResponse:  # type: ignore[type-arg]
        size = request.page_size or DEFAULT_PAGE_SIZE
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise InvalidArgument("page_size", f"must be between 1 and {MAX_PAGE_SIZE}")
        before: int | None = None
        if request.page_token:
            if not request.page_token.isdigit():
                raise InvalidArgument("page_token", "is not a token this API gave out")
            before = int(request.page_token)
        rows = await self._crawls.page(before_id=before, limit=size + 1, owner=visible_owner())
        more = len(rows) > size
        rows = rows[:size]
        return pb.ListCrawlsResponse(
            crawls=[crawl_message(row, counts=counts) for row, counts in rows],
            next_page_token=str(rows[-1][0].id) if more else "",
        )

    @handles_errors
    async def CancelCrawl(self, request: pb.CancelCrawlRequest, context: Ctx) -> pb.CancelCrawlResponse:  # type: ignore[type-arg]
        crawl_id = convert.positive_id(request.crawl_id, "crawl_id")
        outcome = await self._crawls.cancel(crawl_id, owner=visible_owner())
        if outcome.id is None or outcome.state is None:
            raise CrawlNotFound(crawl_id)
        return pb.CancelCrawlResponse(
            state=pb.CrawlState.Value(f"CRAWL_STATE_{outcome.state.upper()}"),
            cancelled_jobs=outcome.cancelled_jobs,
            stopping_jobs=outcome.stopping_jobs,
        )
