"""Hosts as politeness sees them: limits in force, in flight, queued, pauses and why, 429/5xx and
other failures, robots.txt; a page at a time as ListHosts gives them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crawlfleet.dashboard.gateway import DashboardError, Metadata, Stubs
from crawlfleet.dashboard.web import call, checked_form, int_param, redirect_with_note, render, text_param, timeout
from crawlfleet.v1 import admin_pb2

PAGE_SIZE = 50


async def hosts(request: Request) -> Response:
    params = request.query_params
    query = admin_pb2.ListHostsRequest(
        paused_only=params.get("paused") == "1",
        queued_only=params.get("queued") == "1",
        host_prefix=text_param(params, "host_prefix", max_length=300),
        page_size=int_param(params, "page_size", default=PAGE_SIZE, low=1, high=1000),
        page_token=text_param(params, "page_token", max_length=500),
    )
    wait = timeout(request)

    async def rpc(stubs: Stubs, metadata: Metadata) -> admin_pb2.ListHostsResponse:
        return await stubs.admin.ListHosts(query, metadata=metadata, timeout=wait)

    found = await call(request, rpc)
    return render(request, "hosts.html", query=query, hosts=found.hosts, next_page_token=found.next_page_token)


async def resume(request: Request) -> Response:
    """Ends a host's pause now, whoever paused it (admin): ResumeHost."""
    form = await checked_form(request)
    host = text_param(form, "host", max_length=300)
    if not host:
        raise DashboardError(400, "host: which host to resume")
    wait = timeout(request)

    async def rpc(stubs: Stubs, metadata: Metadata) -> admin_pb2.ResumeHostResponse:
        return await stubs.admin.ResumeHost(admin_pb2.ResumeHostRequest(host=host), metadata=metadata, timeout=wait)

    await call(request, rpc)
    return redirect_with_note("/hosts", f"{host} resumed: its next lease probes it, one at a time")


ROUTES = [Route("/hosts", hosts), Route("/hosts/resume", resume, methods=["POST"])]
