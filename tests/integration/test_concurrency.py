"""Many workers against two coordinators: every job completes exactly once and no URL is ever
leased twice at the same time, judged from the lease history the database records."""

from __future__ import annotations

import asyncio
import random

import asyncpg
import grpc

from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import (
    OVERLAPPING_LEASES,
    assert_counts_exact,
    error_info,
    lease_request,
    noop_result,
    scrape,
    seconds,
)

URLS = 12
JOBS_PER_URL = 5
WORKERS = 8


async def work(coord: RunningCoordinator, worker_id: str, total: int, db: asyncpg.Pool, rng: random.Random) -> None:
    """Lease, sometimes fail or release, complete; stop once every job has finished."""
    while await db.fetchval("SELECT count(*) FROM jobs WHERE state = 'succeeded'") < total:
        leased = (await coord.queue.Lease(lease_request(worker_id, max_jobs=3, wait=0.2))).jobs
        done = []
        for job in leased:
            await asyncio.sleep(0)  # let other workers interleave while "working"
            roll = rng.random()
            if roll < 0.15:
                await coord.queue.Fail(pb.FailRequest(job_id=job.id, lease_token=job.lease_token, release=True))
            elif roll < 0.3:
                await coord.queue.Fail(
                    pb.FailRequest(job_id=job.id, lease_token=job.lease_token, error_type="flaky", retryable=True)
                )
            else:
                done.append(pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=noop_result()))
        if done:
            try:
                await coord.queue.Complete(pb.CompleteRequest(jobs=done))
            except grpc.aio.AioRpcError as exc:  # pragma: no cover - would be a bug: nobody else holds these
                raise AssertionError(f"unexpected {error_info(exc).reason}") from exc


async def test_workers_complete_every_job_once_without_overlapping_leases(
    start_coordinator: StartCoordinator, db: asyncpg.Pool
) -> None:
    coordinators = [await start_coordinator(), await start_coordinator()]
    specs = [
        scrape(
            f"http://site{u}.example/page",
            idempotency_key=f"{u}-{n}",
            retry_policy=jobs_pb2.RetryPolicy(
                initial_interval=seconds(0.001), maximum_interval=seconds(0.005), maximum_attempts=50
            ),
        )
        for u in range(URLS)
        for n in range(JOBS_PER_URL)
    ]
    await coordinators[0].queue.Enqueue(pb.EnqueueRequest(jobs=specs))
    total = URLS * JOBS_PER_URL
    rng = random.Random(7)
    await asyncio.wait_for(
        asyncio.gather(
            *(work(coordinators[i % 2], f"worker-{i}", total, db, random.Random(rng.random())) for i in range(WORKERS))
        ),
        timeout=90,
    )

    assert await db.fetchval("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == total
    per_job = await db.fetch(
        "SELECT job_id, count(*) FILTER (WHERE outcome = 'succeeded') AS wins FROM job_attempts GROUP BY job_id"
    )
    assert len(per_job) == total and all(r["wins"] == 1 for r in per_job)
    await assert_counts_exact(db)
    overlapping = await db.fetch(OVERLAPPING_LEASES)
    assert [dict(r) for r in overlapping] == []
    # The check above must be able to fail: the history holds many leases per URL.
    assert await db.fetchval("SELECT min(n) FROM (SELECT count(*) AS n FROM job_attempts GROUP BY target_url) c") >= (
        JOBS_PER_URL
    )
