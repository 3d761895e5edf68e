"""The dashboard over plain HTTP (no browser): several coordinators with failover, the user's token
forwarded so the coordinator's roles decide, signing in, and errors as HTTP statuses."""

from __future__ import annotations

import re

import httpx
import pytest

from crawlfleet.common.channel import ChannelSecurity
from crawlfleet.coordinator.security.auth import Role, TokenEntry
from crawlfleet.coordinator.security.settings import SecuritySettings
from crawlfleet.dashboard.gateway import Coordinators, DashboardError, Metadata, Stubs
from crawlfleet.v1 import admin_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import scrape
from tests.integration.dashboard_fleet import TOKENS, serving_dashboard

PRODUCER_TOKEN = "dash-producer"
# Nothing listens on port 1 of loopback: a coordinator that is down.
DOWN = "127.0.0.1:1"


async def health(stubs: Stubs, metadata: Metadata) -> admin_pb2.GetQueueHealthResponse:
    return await stubs.admin.GetQueueHealth(admin_pb2.GetQueueHealthRequest(), metadata=metadata, timeout=10)


async def requeue(stubs: Stubs, metadata: Metadata) -> admin_pb2.RequeueDeadJobsResponse:
    request = admin_pb2.RequeueDeadJobsRequest(job_ids=[1])
    return await stubs.admin.RequeueDeadJobs(request, metadata=metadata, timeout=10)


async def with_tokens(start_coordinator: StartCoordinator) -> RunningCoordinator:
    entries = [TokenEntry.from_token(role, f"test-{role}", token) for role, token in TOKENS.items()]
    entries.append(TokenEntry.from_token(Role.PRODUCER, "test-producer", PRODUCER_TOKEN))
    return await start_coordinator(security=SecuritySettings(tokens=tuple(entries)))


async def test_calls_move_on_to_a_coordinator_that_answers(coord: RunningCoordinator) -> None:
    coordinators = Coordinators((DOWN, coord.address), ChannelSecurity(), timeout=10)
    try:
        assert (await coordinators.call(None, health)).due == 0
    finally:
        await coordinators.close()
    alone = Coordinators((DOWN,), ChannelSecurity(), timeout=10)
    try:
        with pytest.raises(DashboardError) as error:
            await alone.call(None, health)
        assert error.value.status == 503 and error.value.code == "UNAVAILABLE"
    finally:
        await alone.close()


async def test_the_users_token_goes_with_each_call(start_coordinator: StartCoordinator) -> None:
    coord = await with_tokens(start_coordinator)
    coordinators = Coordinators((coord.address,), ChannelSecurity(), timeout=10)
    try:
        await coordinators.call(TOKENS[Role.VIEWER], health)
        with pytest.raises(DashboardError) as denied:
            await coordinators.call(TOKENS[Role.VIEWER], requeue)
        assert denied.value.status == 403 and denied.value.code == "PERMISSION_DENIED"
        with pytest.raises(DashboardError) as unknown:
            await coordinators.call("not-a-token", health)
        assert unknown.value.status == 401
    finally:
        await coordinators.close()


async def test_signing_in(start_coordinator: StartCoordinator) -> None:
    coord = await with_tokens(start_coordinator)
    async with serving_dashboard(coord) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        first = await http.get("/jobs?state=dead")
        assert first.status_code == 303 and first.headers["location"] == "/login?next=%2Fjobs%3Fstate%3Ddead"
        assert (await http.get("/api/activity")).status_code == 401  # data calls are refused, not redirected

        for token, status, reason in (
            ("not-a-token", 401, "does not know this token"),
            (PRODUCER_TOKEN, 403, "sign in with a viewer or admin token"),
            ("two words", 400, "token: the token must be printable ASCII without spaces"),
        ):
            refused = await http.post("/login", data={"token": token, "next": "/"})
            assert refused.status_code == status and reason in refused.text
            assert "crawlfleet_session" not in refused.cookies

        signed = await http.post("/login", data={"token": TOKENS[Role.VIEWER], "next": "/jobs?state=dead"})
        assert signed.status_code == 303 and signed.headers["location"] == "/jobs?state=dead"
        cookie = signed.headers["set-cookie"]
        assert re.search(r"(?i)httponly", cookie) and re.search(r"(?i)samesite=strict", cookie)
        assert TOKENS[Role.VIEWER] not in cookie  # the token stays on the server
        page = await http.get("/jobs?state=dead")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert (await http.get("/jobs/999")).status_code == 404
        assert (await http.get("/thumbnails/XYZ")).status_code == 400

        await http.post("/logout")
        assert (await http.get("/")).status_code == 303


async def test_resuming_a_paused_host_takes_an_admin_and_the_forms_csrf(start_coordinator: StartCoordinator) -> None:
    coord = await with_tokens(start_coordinator)
    admin_md = (("authorization", f"Bearer {TOKENS[Role.ADMIN]}"),)
    await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[scrape("http://held.example/a")]), metadata=admin_md)
    await coord.admin.PauseHost(
        admin_pb2.PauseHostRequest(host="held.example", reason="maintenance"), metadata=admin_md
    )

    async def paused() -> bool:
        request = admin_pb2.GetHostRequest(host="held.example")
        return (await coord.admin.GetHost(request, metadata=admin_md)).host.paused

    async with serving_dashboard(coord) as base:
        for role, status in ((Role.VIEWER, 403), (Role.ADMIN, 303)):
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                await http.post("/login", data={"token": TOKENS[role], "next": "/"})
                listing = await http.get("/hosts?paused=1")
                assert "operator: maintenance" in listing.text
                csrf = re.search(r'name="csrf" value="([^"]+)"', listing.text)
                assert csrf is not None
                forged = await http.post("/hosts/resume", data={"host": "held.example"})
                assert forged.status_code == 403 and "CSRF" in forged.text
                assert await paused()
                done = await http.post("/hosts/resume", data={"host": "held.example", "csrf": csrf.group(1)})
                assert done.status_code == status, done.text
                assert role is Role.ADMIN or "PERMISSION_DENIED" in done.text
        assert not await paused()
