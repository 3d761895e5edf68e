"""The adaptive host delay (--adaptive-delay): a host's delay follows the response times its
completed pages report, never below its configured delay, and the claim spaces lease starts by it."""

from __future__ import annotations

import asyncpg

from crawlfleet.coordinator.politeness import Politeness
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import lease_request, scrape

HOST = "slow.example"
ADAPTIVE = Politeness(host_concurrency=100, host_delay_seconds=0.0, obey_robots=False, adaptive_delay=True)


def page(job: pb.LeasedJob, response_ms: int) -> pb.CompletedJob:
    result = jobs_pb2.ScrapeResult(
        final_url=job.spec.scrape.url,
        status_code=200,
        content_type="text/html",
        rendered_with=jobs_pb2.RENDER_MODE_HTTP,
    )
    result.response_time.FromMilliseconds(response_ms)
    return pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=jobs_pb2.JobResult(scrape=result))


async def lease_one(coord: RunningCoordinator) -> pb.LeasedJob:
    (job,) = (await coord.queue.Lease(lease_request(max_jobs=1))).jobs
    return job


async def test_a_host_delay_follows_its_response_times(start_coordinator: StartCoordinator, db: asyncpg.Pool) -> None:
    coord = await start_coordinator(politeness=ADAPTIVE)
    await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[scrape(f"https://{HOST}/{n}") for n in range(3)]))
    delay = "SELECT adaptive_delay_ms FROM hosts WHERE host = $1"

    first = await lease_one(coord)
    await coord.queue.Complete(pb.CompleteRequest(jobs=[page(first, 400)]))
    assert await db.fetchval(delay, HOST) == 400  # the first sample is taken as it is

    # The next lease starts no sooner than 400 ms after this one.
    await db.execute("UPDATE hosts SET next_start_at = NULL, ready_at = now() WHERE host = $1", HOST)
    second = await lease_one(coord)
    spacing = await db.fetchval("SELECT next_start_at - last_lease_at FROM hosts WHERE host = $1", HOST)
    assert spacing.total_seconds() == 0.4
    # A faster answer moves it halfway down; a slower one raises it at once.
    await coord.queue.Complete(pb.CompleteRequest(jobs=[page(second, 100)]))
    assert await db.fetchval(delay, HOST) == 250
    await db.execute("UPDATE hosts SET next_start_at = NULL, ready_at = now() WHERE host = $1", HOST)
    third = await lease_one(coord)
    await coord.queue.Complete(pb.CompleteRequest(jobs=[page(third, 900)]))
    assert await db.fetchval(delay, HOST) == 900


async def test_off_by_default_and_never_below_the_configured_delay(
    start_coordinator: StartCoordinator, db: asyncpg.Pool
) -> None:
    plain = await start_coordinator()
    await plain.queue.Enqueue(pb.EnqueueRequest(jobs=[scrape("https://plain.example/")]))
    job = await lease_one(plain)
    await plain.queue.Complete(pb.CompleteRequest(jobs=[page(job, 400)]))
    assert await db.fetchval("SELECT adaptive_delay_ms FROM hosts WHERE host = 'plain.example'") is None

    floor = Politeness(host_concurrency=100, host_delay_seconds=1.0, obey_robots=False, adaptive_delay=True)
    coord = await start_coordinator(politeness=floor)
    await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[scrape(f"https://{HOST}/{n}") for n in range(2)]))
    job = await lease_one(coord)
    await coord.queue.Complete(pb.CompleteRequest(jobs=[page(job, 10)]))
    await db.execute("UPDATE hosts SET next_start_at = NULL, ready_at = now() WHERE host = $1", HOST)
    await lease_one(coord)
    spacing = await db.fetchval("SELECT next_start_at - last_lease_at FROM hosts WHERE host = $1", HOST)
    assert spacing.total_seconds() == 1.0  # the configured delay, not the 10 ms learnt
