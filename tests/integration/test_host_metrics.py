"""The host gauges and the politeness-wait counter of an in-process coordinator, scraped over HTTP."""

from __future__ import annotations

import httpx

from crawlfleet.v1 import admin_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import StartCoordinator
from tests.helpers import eventually, lease_request, scrape, seconds
from tests.integration.jobs import complete, enqueue
from tests.integration.test_host_pauses import LONG_BREAKER
from tests.integration.test_metrics import Samples, value
from tests.integration.test_metrics import scrape as scrape_metrics


async def test_host_gauges_and_politeness_waits(start_coordinator: StartCoordinator) -> None:
    coord = await start_coordinator(metrics_listen="127.0.0.1:0", metrics_refresh_seconds=0.2, politeness=LONG_BREAKER)
    port = coord.coordinator.metrics_port
    assert port is not None
    # down.example: three host failures in a row open its circuit breaker; one job stays queued.
    await enqueue(coord, *(scrape(f"http://down.example/{n}") for n in range(4)))
    for _ in range(3):
        (job,) = (await coord.queue.Lease(lease_request(max_jobs=1))).jobs
        failed = pb.FailRequest(job_id=job.id, lease_token=job.lease_token, error_type="timeout", retryable=False)
        await coord.queue.Fail(failed)
    # busy.example: one lease at a time, one in flight; op.example: paused by an operator for an
    # hour; idle.example: its one job done.
    await coord.admin.SetHostPolicy(admin_pb2.SetHostPolicyRequest(pattern="busy.example", max_concurrency=1))
    await enqueue(
        coord, scrape("http://busy.example/1"), scrape("http://busy.example/2"), scrape("http://idle.example/")
    )
    await enqueue(coord, scrape("http://op.example/"))
    await coord.admin.PauseHost(admin_pb2.PauseHostRequest(host="op.example", duration=seconds(3600)))
    leased = {j.host.name: j for j in (await coord.queue.Lease(lease_request(max_jobs=10))).jobs}
    assert sorted(leased) == ["busy.example", "idle.example"]
    await complete(coord, leased["idle.example"])

    # An empty Lease that waits: every host with queued jobs is paused or at its limit.
    assert list((await coord.queue.Lease(lease_request(worker_id="w2", wait=0.3))).jobs) == []

    async with httpx.AsyncClient(timeout=5.0) as http:

        async def refreshed() -> Samples:
            samples = await scrape_metrics(http, port)
            return samples if value(samples, "crawlfleet_hosts_with_queued_jobs") == 3 else {}

        samples = await eventually(refreshed, what="the host gauges to be refreshed")
    paused = {
        reason: value(samples, "crawlfleet_hosts_paused", reason=reason) for reason in ("operator", "circuit_breaker")
    }
    assert paused == {"operator": 1, "circuit_breaker": 1}
    for reason in ("retry_after", "robots_unreachable", "other"):
        assert (("crawlfleet_hosts_paused", frozenset({("reason", reason)})), 0.0) in samples.items()
    assert value(samples, "crawlfleet_hosts_saturated") == 1
    assert value(samples, "crawlfleet_lease_politeness_waits_total") >= 1
