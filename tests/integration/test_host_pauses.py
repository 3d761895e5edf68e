"""PauseHost and ResumeHost: a paused host's jobs wait while other hosts' are leased, pauses only
lengthen, and a resume brings a host back at once, a waiting Lease included."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import pytest

from crawlfleet.v1 import admin_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import UNTHROTTLED, RunningCoordinator, StartCoordinator
from tests.helpers import error_info, eventually, lease_request, scrape, seconds
from tests.integration.jobs import enqueue
from tests.integration.test_hosts import get_host, invalid_field

# The breaker's pause outlasts any test.
LONG_BREAKER = dataclasses.replace(UNTHROTTLED, backoff_initial_seconds=3600, backoff_max_seconds=3600)


async def pause(
    coord: RunningCoordinator, host: str, duration: float | None = None, reason: str = ""
) -> admin_pb2.Host:
    request = admin_pb2.PauseHostRequest(host=host, reason=reason)
    if duration is not None:
        request.duration.CopyFrom(seconds(duration))
    return (await coord.admin.PauseHost(request)).host


async def resume(coord: RunningCoordinator, host: str) -> admin_pb2.Host:
    return (await coord.admin.ResumeHost(admin_pb2.ResumeHostRequest(host=host))).host


async def leased_hosts(coord: RunningCoordinator, worker: str = "w1") -> list[str]:
    return sorted(j.host.name for j in (await coord.queue.Lease(lease_request(worker_id=worker, max_jobs=10))).jobs)


async def test_a_paused_host_waits_and_the_others_do_not(coord: RunningCoordinator) -> None:
    await enqueue(coord, *(scrape(f"http://{h}.example/{n}") for h in ("held", "free") for n in range(2)))
    host = await pause(coord, "held.example", reason="the site asked us to stop")
    assert host.paused and not host.HasField("paused_until") and not host.HasField("ready_at")
    assert host.pause_reason == "operator: the site asked us to stop" and host.queued == 2
    assert await leased_hosts(coord) == ["free.example", "free.example"]
    assert await leased_hosts(coord, "w2") == []
    back = await resume(coord, "held.example")
    assert not back.paused and back.pause_reason == "" and not back.probing and back.HasField("ready_at")
    assert await leased_hosts(coord, "w2") == ["held.example", "held.example"]


async def test_resume_wakes_a_waiting_lease_at_once(start_coordinator: StartCoordinator) -> None:
    # A re-check interval longer than the wait: only the resume's NOTIFY can deliver the job.
    coord = await start_coordinator(recheck_seconds=60.0)
    await coord.coordinator._listener.connected.wait()  # type: ignore[union-attr]
    await enqueue(coord, scrape("http://held.example/"))
    await pause(coord, "held.example")
    waiting = asyncio.ensure_future(coord.queue.Lease(lease_request(wait=8.0)))
    wakeup = coord.coordinator._wakeup

    async def lease_waits() -> bool:
        return wakeup.waiting == 1 and not waiting.done()

    await eventually(lease_waits, what="the Lease to find nothing and wait")
    await resume(coord, "held.example")
    response = await asyncio.wait_for(waiting, timeout=6.0)
    assert [j.host.name for j in response.jobs] == ["held.example"]


async def test_pauses_only_lengthen_and_keep_the_reason_in_force(coord: RunningCoordinator) -> None:
    await enqueue(coord, scrape("http://site.example/"))
    hour = await pause(coord, "site.example", 3600, reason="an hour")
    assert hour.paused and hour.HasField("paused_until") and hour.pause_reason == "operator: an hour"
    shorter = await pause(coord, "site.example", 60, reason="a minute")
    assert (shorter.paused_until, shorter.pause_reason) == (hour.paused_until, "operator: an hour")
    forever = await pause(coord, "site.example")
    assert not forever.HasField("paused_until") and forever.pause_reason == "operator"
    still = await pause(coord, "site.example", 10, reason="ten seconds")
    assert (still.HasField("paused_until"), still.pause_reason) == (False, "operator")
    assert await leased_hosts(coord) == []


async def test_resume_ends_the_circuit_breaker(start_coordinator: StartCoordinator) -> None:
    """Three host failures in a row open the breaker (the fleet default); a resume closes it."""
    coord = await start_coordinator(politeness=LONG_BREAKER)
    await enqueue(coord, *(scrape(f"http://down.example/{n}") for n in range(4)))
    for _ in range(3):
        (job,) = (await coord.queue.Lease(lease_request(max_jobs=1))).jobs
        await coord.queue.Fail(
            pb.FailRequest(
                job_id=job.id, lease_token=job.lease_token, error_type="http_5xx", error_message="503", retryable=False
            )
        )
    broken = await get_host(coord, "down.example")
    assert broken.paused and broken.pause_reason.startswith("circuit_breaker: 3 failures in a row")
    assert (broken.error_streak, broken.recent_failures.http_5xx) == (3, 3)
    assert broken.recent_failures.HasField("window_started_at")
    assert await leased_hosts(coord) == []
    back = await resume(coord, "down.example")
    assert (back.paused, back.probing, back.error_streak, back.pause_reason) == (False, False, 0, "")
    assert back.recent_failures.http_5xx == 3  # the window's record stays
    assert await leased_hosts(coord) == ["down.example"]


async def test_unknown_hosts_and_bad_pauses(coord: RunningCoordinator) -> None:
    for call in (pause(coord, "never.example"), resume(coord, "never.example")):
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await call
        assert missing.value.code() is grpc.StatusCode.NOT_FOUND
        assert error_info(missing.value).reason == "HOST_NOT_FOUND"
    await enqueue(coord, scrape("http://site.example/"))
    assert await invalid_field(pause(coord, "Site.Example")) == "host"
    assert await invalid_field(pause(coord, "")) == "host"
    assert await invalid_field(pause(coord, "site.example", 0)) == "duration"
    assert await invalid_field(pause(coord, "site.example", -5)) == "duration"
    assert await invalid_field(pause(coord, "site.example", 366 * 86400)) == "duration"
    assert await invalid_field(pause(coord, "site.example", reason="r" * 501)) == "reason"
    assert await invalid_field(resume(coord, "*.site.example")) == "host"
    assert not (await get_host(coord, "site.example")).paused
