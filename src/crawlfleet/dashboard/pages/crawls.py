"""Crawls: the list with progress bars, one crawl with its counts, depth histogram and errors
(live from the WatchCrawl stream), and cancelling one (admin, after a confirmation)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
from google.protobuf import duration_pb2
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from crawlfleet.dashboard import present
from crawlfleet.dashboard.gateway import Metadata, Stubs, from_rpc_error
from crawlfleet.dashboard.pages.overview import sse
from crawlfleet.dashboard.web import (
    call,
    checked_form,
    coordinators,
    int_param,
    redirect_with_note,
    render,
    session_of,
    settings,
    text_param,
    timeout,
)
from crawlfleet.v1 import crawls_pb2

MAX_CRAWL_ID = 2**63 - 1


def crawl_id_of(request: Request) -> int:
    return int_param(request.path_params, "crawl_id", default=0, low=1, high=MAX_CRAWL_ID)


def live_numbers(crawl: crawls_pb2.Crawl) -> dict[str, object]:
    """The crawl page's live figures by data-live name, and its progress bar in percent."""
    done = crawl.succeeded + crawl.failed
    return {
        "text": {
            "state": present.crawl_state(crawl.state),
            "pages_enqueued": str(crawl.pages_enqueued),
            "queued": str(crawl.queued),
            "leased": str(crawl.leased),
            "succeeded": str(crawl.succeeded),
            "failed": str(crawl.failed),
            "out_of_scope": str(crawl.out_of_scope),
            "over_limit": str(crawl.over_limit),
            "pages_per_second": f"{crawl.pages_per_second:.2f}",
        },
        "bars": {"progress": present.percent(done, crawl.pages_enqueued)},
        "depths": depth_series(crawl),
    }


def depth_series(crawl: crawls_pb2.Crawl) -> dict[str, list[int]]:
    """Per depth, cumulative counts for bars drawn over each other: all jobs, those that ended
    (fetched or failed), those fetched; the visible bands are then fetched, failed and pending."""
    depths = sorted(crawl.depths, key=lambda d: d.depth)
    return {
        "depth": [d.depth for d in depths],
        "total": [d.succeeded + d.failed + d.queued + d.leased for d in depths],
        "ended": [d.succeeded + d.failed for d in depths],
        "fetched": [d.succeeded for d in depths],
    }


async def get_crawl(request: Request, crawl_id: int) -> crawls_pb2.Crawl:
    wait = timeout(request)

    async def rpc(stubs: Stubs, metadata: Metadata) -> crawls_pb2.GetCrawlResponse:
        return await stubs.crawls.GetCrawl(
            crawls_pb2.GetCrawlRequest(crawl_id=crawl_id), metadata=metadata, timeout=wait
        )

    return (await call(request, rpc)).crawl


async def crawl_list(request: Request) -> Response:
    query = crawls_pb2.ListCrawlsRequest(
        page_size=int_param(request.query_params, "page_size", default=20, low=1, high=100),
        page_token=text_param(request.query_params, "page_token", max_length=500),
    )
    wait = timeout(request)

    async def rpc(stubs: Stubs, metadata: Metadata) -> crawls_pb2.ListCrawlsResponse:
        return await stubs.crawls.ListCrawls(query, metadata=metadata, timeout=wait)

    found = await call(request, rpc)
    # ListCrawls gives the per-state counts the progress bars need: one call for the page.
    return render(request, "crawls.html", crawls=list(found.crawls), next_page_token=found.next_page_token)


async def crawl_detail(request: Request) -> Response:
    crawl = await get_crawl(request, crawl_id_of(request))
    live = live_numbers(crawl)
    return render(
        request, "crawl.html", crawl=crawl, live=live, depths_json=json.dumps(live["depths"]).replace("<", "\\u003c")
    )


async def crawl_events(request: Request) -> Response:
    """Server-sent events from the WatchCrawl stream: the crawl's figures as they change."""
    crawl_id = crawl_id_of(request)
    session = session_of(request)
    interval = duration_pb2.Duration()
    interval.FromNanoseconds(round(max(0.2, settings(request).refresh_seconds) * 1e9))
    watch = crawls_pb2.WatchCrawlRequest(crawl_id=crawl_id, interval=interval)

    def open_stream(stubs: Stubs, metadata: Metadata) -> AsyncIterator[crawls_pb2.WatchCrawlResponse]:
        return stubs.crawls.WatchCrawl(watch, metadata=metadata)  # type: ignore[return-value]

    async def events() -> AsyncIterator[str]:
        stream = coordinators(request).stream(session.token, open_stream)
        try:
            async for update in stream:
                yield sse("numbers", live_numbers(update.crawl))
            # The stream ends with the crawl: the page stops listening rather than reconnect.
            yield sse("end", {"message": ""})
        except grpc.aio.AioRpcError as error:
            problem = from_rpc_error(error)
            yield sse("problem", {"message": f"{problem.code}: {problem.message}"})
        finally:
            cancel = getattr(stream, "cancel", None)
            if cancel is not None:
                cancel()  # the browser went away: so does the coordinator's stream

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


async def cancel_confirm(request: Request) -> Response:
    crawl = await get_crawl(request, crawl_id_of(request))
    return render(
        request,
        "confirm.html",
        title=f"Cancel crawl {crawl.id}?",
        message=f"Crawl {crawl.id} has {crawl.queued} queued and {crawl.leased} leased jobs: queued ones are "
        "cancelled now, leased ones at their worker's next heartbeat. This cannot be undone.",
        action=f"/crawls/{crawl.id}/cancel",
        fields={},
        button="Cancel the crawl",
        back=f"/crawls/{crawl.id}",
    )


async def cancel(request: Request) -> Response:
    await checked_form(request)
    crawl_id = crawl_id_of(request)
    wait = timeout(request)

    async def rpc(stubs: Stubs, metadata: Metadata) -> crawls_pb2.CancelCrawlResponse:
        return await stubs.crawls.CancelCrawl(
            crawls_pb2.CancelCrawlRequest(crawl_id=crawl_id), metadata=metadata, timeout=wait
        )

    done = await call(request, rpc)
    note = f"crawl cancelled: {done.cancelled_jobs} jobs cancelled, {done.stopping_jobs} stopping"
    return redirect_with_note(f"/crawls/{crawl_id}", note)


ROUTES = [
    Route("/crawls", crawl_list),
    Route("/crawls/{crawl_id}", crawl_detail),
    Route("/events/crawls/{crawl_id}", crawl_events),
    Route("/crawls/{crawl_id}/cancel", cancel_confirm, methods=["GET"]),
    Route("/crawls/{crawl_id}/cancel", cancel, methods=["POST"]),
]
