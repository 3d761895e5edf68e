"""How a lease's end decides the job's fate: a cancel wins over retry and release, and a job that
ends its lease through no fault of its own (released, expired) keeps its place in the order."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest

from crawlfleet.v1 import admin_pb2, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import assert_counts_exact, eventually, lease_request, noop, seconds
from tests.integration.jobs import enqueue, get_job


def retryable_noop() -> jobs_pb2.JobSpec:
    return noop(retry_policy=jobs_pb2.RetryPolicy(maximum_attempts=3, initial_interval=seconds(0)))


@pytest.mark.parametrize("release", [False, True], ids=["retryable-failure", "release"])
async def test_cancel_wins_over_retry_and_release(coord: RunningCoordinator, db: asyncpg.Pool, release: bool) -> None:
    (job_id,) = await enqueue(coord, retryable_noop())
    (job,) = (await coord.queue.Lease(lease_request())).jobs
    await coord.admin.CancelJob(admin_pb2.CancelJobRequest(job_id=job_id))
    # The worker fails (or releases) the job before its next heartbeat could tell it of the cancel.
    answer = await coord.queue.Fail(
        pb.FailRequest(job_id=job_id, lease_token=job.lease_token, error_type="boom", retryable=True, release=release)
    )
    assert answer.state == jobs_pb2.JOB_STATE_CANCELLED
    assert (await get_job(coord, job_id)).state == jobs_pb2.JOB_STATE_CANCELLED
    assert list((await coord.queue.Lease(lease_request())).jobs) == []
    outcome = await db.fetchval("SELECT outcome FROM job_attempts WHERE job_id = $1", job_id)
    assert outcome == ("released" if release else "failed")
    await assert_counts_exact(db)


async def test_released_job_keeps_its_place(coord: RunningCoordinator) -> None:
    (first,) = await enqueue(coord, noop())
    (job,) = (await coord.queue.Lease(lease_request(max_jobs=1))).jobs
    later = await enqueue(coord, noop(), noop(), noop())
    await coord.queue.Fail(pb.FailRequest(job_id=first, lease_token=job.lease_token, release=True))
    assert [j.id for j in (await coord.queue.Lease(lease_request(max_jobs=1))).jobs] == [first]
    assert [j.id for j in (await coord.queue.Lease(lease_request(max_jobs=10))).jobs] == later


async def test_expired_job_keeps_its_place(start_coordinator: StartCoordinator, db: asyncpg.Pool) -> None:
    coord = await start_coordinator(lease_seconds=0.3)
    (first,) = await enqueue(coord, noop())
    await coord.queue.Lease(lease_request(worker_id="crashed", max_jobs=1))
    later = await enqueue(coord, noop(), noop())

    async def reaped() -> bool:
        return bool(await db.fetchval("SELECT state::text FROM jobs WHERE id = $1", first) == "queued")

    await eventually(reaped, what="the reaper to requeue the expired lease")
    assert [j.id for j in (await coord.queue.Lease(lease_request(max_jobs=1))).jobs] == [first]
    assert [j.id for j in (await coord.queue.Lease(lease_request(max_jobs=10))).jobs] == later


async def test_retried_failure_still_waits_for_its_backoff(coord: RunningCoordinator) -> None:
    (job_id,) = await enqueue(coord, retryable_noop())
    (job,) = (await coord.queue.Lease(lease_request())).jobs
    answer = await coord.queue.Fail(
        pb.FailRequest(
            job_id=job_id, lease_token=job.lease_token, error_type="boom", retryable=True, retry_after=seconds(60)
        )
    )
    assert answer.state == jobs_pb2.JOB_STATE_QUEUED
    assert answer.run_at.ToDatetime(tzinfo=dt.UTC) > dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    assert list((await coord.queue.Lease(lease_request())).jobs) == []
