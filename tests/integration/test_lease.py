"""Lease, Heartbeat, Complete and Fail over gRPC: long-poll, exclusivity, fencing, release."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable

import asyncpg
import grpc
import pytest

from crawlfleet.coordinator.storage.admin import AdminQueue
from crawlfleet.coordinator.storage.queue import Queue
from crawlfleet.v1 import admin_pb2, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import assert_counts_exact, error_info, eventually, lease_request, noop, noop_result, scrape, seconds


async def enqueue(coord: RunningCoordinator, *specs: jobs_pb2.JobSpec) -> list[int]:
    response = await coord.queue.Enqueue(pb.EnqueueRequest(jobs=list(specs)))
    return [j.id for j in response.jobs]


def completed(job: pb.LeasedJob) -> pb.CompletedJob:
    return pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=noop_result())


async def test_lease_claims_in_priority_then_age_order(coord: RunningCoordinator) -> None:
    low, high, mid = await enqueue(coord, noop(), noop(priority=50), noop(priority=10))
    response = await coord.queue.Lease(lease_request(max_jobs=2))
    assert [j.id for j in response.jobs] == [high, mid] or {j.id for j in response.jobs} == {high, mid}
    rest = await coord.queue.Lease(lease_request(max_jobs=5))
    assert [j.id for j in rest.jobs] == [low]
    job = rest.jobs[0]
    assert job.attempt == 1 and job.kind == "noop" and job.lease_token
    assert response.lease_duration.seconds == 5


async def test_long_poll_returns_when_a_job_arrives(start_coordinator: StartCoordinator) -> None:
    # A re-check interval longer than the wait: only the NOTIFY wake-up can deliver the job.
    coord = await start_coordinator(recheck_seconds=60.0)
    waiting = asyncio.ensure_future(coord.queue.Lease(lease_request(wait=8.0)))
    await asyncio.sleep(0)  # let the call start before the job exists
    (job_id,) = await enqueue(coord, noop())
    response = await waiting
    assert [j.id for j in response.jobs] == [job_id]


async def test_notify_from_another_coordinator_wakes_the_long_poll(start_coordinator: StartCoordinator) -> None:
    waiter = await start_coordinator(recheck_seconds=60.0)
    producer = await start_coordinator(recheck_seconds=60.0)
    await waiter.coordinator._listener.connected.wait()  # type: ignore[union-attr]
    waiting = asyncio.ensure_future(waiter.queue.Lease(lease_request(wait=8.0)))
    (job_id,) = await enqueue(producer, noop())
    assert [j.id for j in (await waiting).jobs] == [job_id]


async def test_empty_long_poll_returns_before_the_client_deadline(coord: RunningCoordinator) -> None:
    response = await coord.queue.Lease(lease_request(wait=30.0), timeout=1.5)
    assert list(response.jobs) == []


async def test_one_leased_job_per_url(coord: RunningCoordinator) -> None:
    first, second = await enqueue(
        coord, scrape("http://example.com/x", idempotency_key="a"), scrape("http://example.com/x", idempotency_key="b")
    )
    leased = (await coord.queue.Lease(lease_request(max_jobs=10))).jobs
    assert [j.id for j in leased] == [first]
    assert list((await coord.queue.Lease(lease_request(worker_id="w2", max_jobs=10))).jobs) == []
    await coord.queue.Complete(pb.CompleteRequest(jobs=[completed(leased[0])]))
    assert [j.id for j in (await coord.queue.Lease(lease_request(worker_id="w2"))).jobs] == [second]


async def test_heartbeat_extends_and_reports_completed_and_lost(coord: RunningCoordinator, queue: Queue) -> None:
    await enqueue(coord, noop(), noop(), noop())
    a, b, c = (await coord.queue.Lease(lease_request())).jobs
    # b's Complete commits before the heartbeat that still names it: settled, not lost.
    await coord.queue.Complete(pb.CompleteRequest(jobs=[completed(b)]))
    answer = await coord.queue.Heartbeat(
        pb.HeartbeatRequest(
            worker_id="w1",
            leases=[
                pb.LeaseRef(job_id=a.id, lease_token=a.lease_token),
                pb.LeaseRef(job_id=b.id, lease_token=b.lease_token),
                pb.LeaseRef(job_id=c.id, lease_token="00000000-0000-4000-8000-000000000000"),
            ],
        )
    )
    assert [(s.job_id, s.status) for s in answer.leases] == [
        (a.id, pb.LEASE_STATUS_EXTENDED),
        (b.id, pb.LEASE_STATUS_COMPLETED),
        (c.id, pb.LEASE_STATUS_LOST),
    ]
    registry = coord.coordinator.metrics.registry
    counted = [registry.get_sample_value(f"crawlfleet_leases_{what}_total") for what in ("extended", "lost")]
    assert counted == [1, 1]
    assert answer.leases[0].lease_expires_at.ToDatetime() >= a.lease_expires_at.ToDatetime()


async def test_stale_token_after_expiry_changes_nothing(start_coordinator: StartCoordinator, db: asyncpg.Pool) -> None:
    coord = await start_coordinator(lease_seconds=0.3)
    (job_id,) = await enqueue(coord, noop())
    (stale,) = (await coord.queue.Lease(lease_request(worker_id="slow"))).jobs

    async def reaped() -> bool:
        return bool(await db.fetchval("SELECT state::text FROM jobs WHERE id = $1", job_id) == "queued")

    await eventually(reaped, what="the reaper to requeue the expired lease")
    (fresh,) = (await coord.queue.Lease(lease_request(worker_id="fast"))).jobs
    assert fresh.id == job_id and fresh.attempt == 2 and fresh.lease_token != stale.lease_token
    before = dict(await db.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id))
    attempts_before = await db.fetchval("SELECT count(*) FROM job_attempts")

    calls: list[Awaitable[object]] = [
        coord.queue.Complete(pb.CompleteRequest(jobs=[completed(stale)])),
        coord.queue.Fail(pb.FailRequest(job_id=job_id, lease_token=stale.lease_token, error_type="x", retryable=False)),
        coord.queue.Fail(pb.FailRequest(job_id=job_id, lease_token=stale.lease_token, release=True)),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.ABORTED
        assert error_info(caught.value).reason == "LEASE_LOST"
    heartbeat = await coord.queue.Heartbeat(
        pb.HeartbeatRequest(worker_id="slow", leases=[pb.LeaseRef(job_id=job_id, lease_token=stale.lease_token)])
    )
    assert heartbeat.leases[0].status == pb.LEASE_STATUS_LOST

    assert dict(await db.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)) == before
    assert await db.fetchval("SELECT count(*) FROM job_attempts") == attempts_before
    await coord.queue.Complete(pb.CompleteRequest(jobs=[completed(fresh)]))


async def test_complete_is_all_or_nothing_and_replay_is_ok(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    await enqueue(coord, noop(), noop())
    good, lost = (await coord.queue.Lease(lease_request())).jobs
    await coord.queue.Fail(pb.FailRequest(job_id=lost.id, lease_token=lost.lease_token, release=True))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coord.queue.Complete(pb.CompleteRequest(jobs=[completed(good), completed(lost)]))
    info = error_info(caught.value)
    assert (info.reason, info.metadata["job_ids"]) == ("LEASE_LOST", str(lost.id))
    assert await db.fetchval("SELECT state::text FROM jobs WHERE id = $1", good.id) == "leased"
    assert await db.fetchval("SELECT outcome FROM job_attempts WHERE job_id = $1", good.id) == "running"
    await assert_counts_exact(db)

    await coord.queue.Complete(pb.CompleteRequest(jobs=[completed(good)]))
    await coord.queue.Complete(pb.CompleteRequest(jobs=[completed(good)]))  # replay: OK
    assert await db.fetchval("SELECT count(*) FROM job_attempts WHERE job_id = $1", good.id) == 1
    different = pb.CompletedJob(
        job_id=good.id,
        lease_token=good.lease_token,
        result=jobs_pb2.JobResult(
            scrape=jobs_pb2.ScrapeResult(
                final_url="http://example.com/", status_code=200, rendered_with=jobs_pb2.RENDER_MODE_HTTP
            )
        ),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coord.queue.Complete(pb.CompleteRequest(jobs=[different]))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_release_requeues_now_without_charging_an_attempt(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    (job_id,) = await enqueue(coord, noop())
    (job,) = (await coord.queue.Lease(lease_request(worker_id="leaving"))).jobs
    answer = await coord.queue.Fail(
        pb.FailRequest(job_id=job_id, lease_token=job.lease_token, release=True, error_type="shutdown")
    )
    assert answer.state == jobs_pb2.JOB_STATE_QUEUED
    (again,) = (await coord.queue.Lease(lease_request(worker_id="other"))).jobs
    assert again.id == job_id and again.attempt == 1
    outcomes = await db.fetch("SELECT outcome FROM job_attempts WHERE job_id = $1 ORDER BY started_at", job_id)
    assert [r["outcome"] for r in outcomes] == ["released", "running"]


async def test_non_retryable_failure_goes_dead_and_requeue_revives(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    (job_id,) = await enqueue(coord, scrape("http://example.com/gone"))
    (job,) = (await coord.queue.Lease(lease_request())).jobs
    answer = await coord.queue.Fail(
        pb.FailRequest(
            job_id=job_id,
            lease_token=job.lease_token,
            error_type="http_404",
            error_message="not found",
            retryable=False,
        )
    )
    assert answer.state == jobs_pb2.JOB_STATE_DEAD
    got = (await coord.admin.GetJob(admin_pb2.GetJobRequest(job_id=job_id))).job
    assert got.state == jobs_pb2.JOB_STATE_DEAD and got.last_error == "http_404: not found"
    assert [(a.outcome, a.error_type) for a in got.attempts] == [("failed", "http_404")]

    revived = await coord.admin.RequeueDeadJobs(admin_pb2.RequeueDeadJobsRequest(job_ids=[job_id, 999]))
    assert list(revived.requeued_job_ids) == [job_id]
    (again,) = (await coord.queue.Lease(lease_request())).jobs
    assert again.id == job_id and again.attempt == 1


async def test_retry_after_from_the_worker_is_honoured(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    (job_id,) = await enqueue(coord, noop())
    (job,) = (await coord.queue.Lease(lease_request())).jobs
    answer = await coord.queue.Fail(
        pb.FailRequest(
            job_id=job_id, lease_token=job.lease_token, error_type="http_429", retryable=True, retry_after=seconds(120)
        )
    )
    finished = await db.fetchval("SELECT finished_at FROM job_attempts WHERE job_id = $1", job_id)
    assert answer.state == jobs_pb2.JOB_STATE_QUEUED
    assert answer.run_at.ToDatetime(tzinfo=dt.UTC) - finished == dt.timedelta(seconds=120)
    assert list((await coord.queue.Lease(lease_request())).jobs) == []


async def test_cancel_queued_and_leased(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    queued_id, leased_id = await enqueue(coord, noop(priority=0), noop(priority=5))
    (job,) = (await coord.queue.Lease(lease_request(max_jobs=1))).jobs
    assert job.id == leased_id
    assert (await coord.admin.CancelJob(admin_pb2.CancelJobRequest(job_id=queued_id))).state == (
        jobs_pb2.JOB_STATE_CANCELLED
    )
    assert (await coord.admin.CancelJob(admin_pb2.CancelJobRequest(job_id=leased_id))).state == (
        jobs_pb2.JOB_STATE_LEASED
    )
    answer = await coord.queue.Heartbeat(
        pb.HeartbeatRequest(worker_id="w1", leases=[pb.LeaseRef(job_id=job.id, lease_token=job.lease_token)])
    )
    assert answer.leases[0].status == pb.LEASE_STATUS_CANCELLED
    assert await db.fetchval("SELECT state::text FROM jobs WHERE id = $1", leased_id) == "cancelled"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coord.queue.Complete(pb.CompleteRequest(jobs=[completed(job)]))
    assert error_info(caught.value).reason == "LEASE_LOST"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coord.admin.CancelJob(admin_pb2.CancelJobRequest(job_id=424242))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.LeaseRequest(max_jobs=1), "worker.worker_id"),
        (lease_request(max_jobs=0), "max_jobs"),
        (lease_request(max_jobs=5000), "max_jobs"),
        (lease_request(slots=-1), "worker.slots"),
        (lease_request(slots=1_000_001), "worker.slots"),
    ],
)
async def test_malformed_lease_is_rejected(coord: RunningCoordinator, request_: pb.LeaseRequest, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coord.queue.Lease(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).metadata["field"] == field


async def listed_slots(coord: RunningCoordinator) -> dict[str, int]:
    listed = await coord.admin.ListWorkers(admin_pb2.ListWorkersRequest(seen_within=seconds(3600)))
    return {w.worker_id: w.slots for w in listed.workers}


async def test_a_workers_slots_are_recorded_from_its_lease_and_listed(coord: RunningCoordinator) -> None:
    await coord.queue.Lease(lease_request(worker_id="eight", slots=8))
    await coord.queue.Lease(lease_request(worker_id="older"))  # a worker that does not report slots
    assert await listed_slots(coord) == {"eight": 8, "older": 0}
    # Restarted with other slots, the worker is recorded again at once, not after the interval
    # in which repeated Lease calls of the same worker are recorded only once.
    await coord.queue.Lease(lease_request(worker_id="eight", slots=16))
    assert (await listed_slots(coord))["eight"] == 16


async def test_a_refused_slots_value_records_nothing(coord: RunningCoordinator) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coord.queue.Lease(lease_request(worker_id="negative", slots=-1))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).metadata["field"] == "worker.slots"
    assert "negative" not in await listed_slots(coord)


async def test_malformed_token_is_rejected(coord: RunningCoordinator) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coord.queue.Fail(pb.FailRequest(job_id=1, lease_token="not-a-token"))
    assert error_info(caught.value).metadata["field"] == "lease_token"


async def test_draining_coordinator_answers_waiting_leases_empty(
    start_coordinator: StartCoordinator, db: asyncpg.Pool
) -> None:
    coord = await start_coordinator(recheck_seconds=60.0)
    waiting = asyncio.ensure_future(coord.queue.Lease(lease_request(wait=15.0)))
    wakeup = coord.coordinator._wakeup

    async def lease_waits() -> bool:
        return wakeup.waiting == 1 and not waiting.done()

    await eventually(lease_waits, what="the Lease to find nothing and wait")
    stopping = asyncio.ensure_future(coord.coordinator.stop(grace=5.0))
    response = await waiting
    await stopping
    assert list(response.jobs) == []


async def test_requeue_brings_back_one_of_two_dead_jobs_of_a_url(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    dead_ids = []
    for _ in range(2):  # the same URL dies twice: two dead jobs with one dedupe key
        (job_id,) = await enqueue(coord, scrape("http://example.com/twice"))
        (job,) = (await coord.queue.Lease(lease_request())).jobs
        await coord.queue.Fail(pb.FailRequest(job_id=job_id, lease_token=job.lease_token, retryable=False))
        dead_ids.append(job_id)
    by_ids = await coord.admin.RequeueDeadJobs(admin_pb2.RequeueDeadJobsRequest(job_ids=dead_ids))
    assert list(by_ids.requeued_job_ids) == [dead_ids[1]]
    (job,) = (await coord.queue.Lease(lease_request())).jobs
    await coord.queue.Fail(pb.FailRequest(job_id=job.id, lease_token=job.lease_token, retryable=False))
    by_filter = await coord.admin.RequeueDeadJobs(
        admin_pb2.RequeueDeadJobsRequest(filter=admin_pb2.JobFilter(url_prefix="http://example.com/"))
    )
    assert list(by_filter.requeued_job_ids) == [dead_ids[1]]
    assert await db.fetchval("SELECT count(*) FROM jobs WHERE state = 'queued'") == 1


async def test_counts_follow_every_transition(start_coordinator: StartCoordinator, db: asyncpg.Pool) -> None:
    coord = await start_coordinator(lease_seconds=0.3)
    ids = await enqueue(coord, noop(), noop(), noop(), scrape("http://example.com/c"), noop(priority=1))
    await enqueue(coord, scrape("http://example.com/c"))  # a duplicate: counted once
    leased = {j.id: j for j in (await coord.queue.Lease(lease_request(max_jobs=4))).jobs}
    first, second, third, fourth = sorted(leased)
    await coord.queue.Complete(pb.CompleteRequest(jobs=[completed(leased[first])]))
    await coord.queue.Fail(pb.FailRequest(job_id=second, lease_token=leased[second].lease_token, retryable=False))
    await coord.queue.Fail(pb.FailRequest(job_id=third, lease_token=leased[third].lease_token, release=True))
    await coord.admin.CancelJob(admin_pb2.CancelJobRequest(job_id=ids[-1] if ids[-1] not in leased else ids[0]))
    await coord.admin.RequeueDeadJobs(admin_pb2.RequeueDeadJobsRequest(job_ids=[second]))

    async def reaped() -> bool:  # the fourth lease is never extended
        return bool(await db.fetchval("SELECT state::text FROM jobs WHERE id = $1", fourth) != "leased")

    await eventually(reaped, what="the reaper to end the expired lease")
    await assert_counts_exact(db)
    await db.execute(
        "UPDATE jobs SET created_at = created_at - interval '1 day', finished_at = now() - interval '1 day'"
        " WHERE finished_at IS NOT NULL"
    )
    await coord.admin.PurgeJobs(admin_pb2.PurgeJobsRequest(finished_before=seconds(3600)))
    await assert_counts_exact(db)


async def test_recount_repairs_counts_after_writes_behind_the_queue(
    coord: RunningCoordinator, db: asyncpg.Pool
) -> None:
    first, _ = await enqueue(coord, noop(), noop())
    await coord.coordinator.stop(grace=0)  # no folding behind the test's back from here on
    await AdminQueue(db).fold_counts()  # job_counts holds (noop, queued): the rebuild must replace it
    await db.execute("UPDATE jobs SET state = 'cancelled', finished_at = now() WHERE id = $1", first)
    with pytest.raises(AssertionError):
        await assert_counts_exact(db)
    await AdminQueue(db).rebuild_counts()
    await assert_counts_exact(db)
