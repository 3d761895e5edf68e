"""The overview: jobs by state, the last hour's throughput and lease waits as charts, workers and
health, with live numbers over server-sent events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import duration_pb2
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from crawlfleet.dashboard import present
from crawlfleet.dashboard.gateway import DashboardError, Metadata, Stubs
from crawlfleet.dashboard.web import LoginRequired, call, int_param, render, session_of, settings, timeout
from crawlfleet.v1 import admin_pb2

ACTIVITY_MINUTES = 60


async def health(request: Request) -> admin_pb2.GetQueueHealthResponse:
    wait = timeout(request)

    async def rpc(stubs: Stubs, metadata: Metadata) -> admin_pb2.GetQueueHealthResponse:
        return await stubs.admin.GetQueueHealth(admin_pb2.GetQueueHealthRequest(), metadata=metadata, timeout=wait)

    return await call(request, rpc)


def live_numbers(health: admin_pb2.GetQueueHealthResponse) -> dict[str, str]:
    """The overview's live figures by their element's data-live name."""
    numbers = {f"state-{present.job_state(s.state)}": str(s.count) for s in health.states}
    numbers.update(
        due=str(health.due),
        oldest_due_age=present.duration(health.oldest_due_age) if health.due else present.NOTHING,
        leases_expiring_soon=str(health.leases_expiring_soon),
        leases_expired=str(health.leases_expired),
        dead=str(health.dead),
        workers=str(len(health.workers)),
        in_flight=str(sum(w.in_flight for w in health.workers)),
        # Workers that report no slots (older ones) add nothing.
        slots=str(sum(w.slots for w in health.workers)),
    )
    return numbers


async def overview(request: Request) -> Response:
    found = await health(request)
    wait = timeout(request)

    async def stats_rpc(stubs: Stubs, metadata: Metadata) -> admin_pb2.GetQueueStatsResponse:
        return await stubs.admin.GetQueueStats(admin_pb2.GetQueueStatsRequest(), metadata=metadata, timeout=wait)

    stats = await call(request, stats_rpc)
    kinds: dict[str, dict[str, int]] = {}
    for entry in stats.kinds:
        kinds.setdefault(entry.kind, {})[present.job_state(entry.state)] = entry.count
    return render(
        request,
        "overview.html",
        health=found,
        numbers=live_numbers(found),
        states=[present.job_state(s.state) for s in found.states],
        kinds=kinds,
        leases_of_slots=present.leases_of_slots,
    )


async def activity(request: Request) -> Response:
    """The charts' data: per minute, attempts succeeded/failed/expired and lease waits in ms."""
    minutes = int_param(request.query_params, "minutes", default=ACTIVITY_MINUTES, low=1, high=24 * 60)
    wait = timeout(request)

    async def rpc(stubs: Stubs, metadata: Metadata) -> admin_pb2.GetQueueActivityResponse:
        request_pb = admin_pb2.GetQueueActivityRequest(window=duration_pb2.Duration(seconds=minutes * 60))
        return await stubs.admin.GetQueueActivity(request_pb, metadata=metadata, timeout=wait)

    found = await call(request, rpc)

    def ms(value: duration_pb2.Duration) -> float | None:
        return value.ToNanoseconds() / 1e6 if present.is_set(value) else None

    series: dict[str, list[Any]] = {
        "minute": [m.minute.seconds for m in found.minutes],
        "succeeded": [m.succeeded for m in found.minutes],
        "failed": [m.failed for m in found.minutes],
        "expired": [m.expired for m in found.minutes],
        "wait_avg_ms": [ms(m.lease_wait_avg) for m in found.minutes],
        "wait_max_ms": [ms(m.lease_wait_max) for m in found.minutes],
    }
    return JSONResponse(series, headers={"Cache-Control": "no-store"})


def sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


async def overview_events(request: Request) -> Response:
    """Server-sent events: the overview's figures every refresh interval, until the page goes."""
    session_of(request)  # signed in, or off to the login page
    interval = settings(request).refresh_seconds

    async def events() -> AsyncIterator[str]:
        while not await request.is_disconnected():
            try:
                yield sse("numbers", live_numbers(await health(request)))
            except DashboardError as error:
                yield sse("problem", {"message": f"{error.code or error.status}: {error.message}"})
            except LoginRequired:
                yield sse("end", {"message": "signed out: reload the page to sign in again"})
                return
            await asyncio.sleep(interval)  # the pace of updates, not a wait for a condition

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


ROUTES = [
    Route("/", overview),
    Route("/api/activity", activity),
    Route("/events/overview", overview_events),
]
