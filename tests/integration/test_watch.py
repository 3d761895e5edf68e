"""WatchJobs through a real coordinator: snapshot, jobs finishing through the real RPCs, the end of
the stream, the periodic re-check, drain, the stream bound and validation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import asyncpg
import grpc
import pytest

from crawlfleet.coordinator.api.watch import MAX_WATCH_JOB_IDS
from crawlfleet.coordinator.storage.watch import FINISHED_CHANNEL
from crawlfleet.v1 import admin_pb2, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import error_info, eventually, lease_request, noop, noop_result

# How long a test waits for one message; a healthy stream answers in well under a second.
READ_TIMEOUT = 15.0
SUCCEEDED, DEAD, CANCELLED = jobs_pb2.JOB_STATE_SUCCEEDED, jobs_pb2.JOB_STATE_DEAD, jobs_pb2.JOB_STATE_CANCELLED


class Watch:
    """A WatchJobs call and what it reported so far."""

    def __init__(self, coord: RunningCoordinator, request: pb.WatchJobsRequest) -> None:
        self.call = coord.queue.WatchJobs(request)
        self.messages: list[pb.WatchJobsResponse] = []
        self.finished: dict[int, pb.FinishedJob] = {}
        self.not_found: list[int] = []
        self.ended = False

    async def read(self) -> pb.WatchJobsResponse | None:
        """The next message, or None at the end of the stream (which must then be OK)."""
        message = await asyncio.wait_for(self.call.read(), READ_TIMEOUT)
        if message is grpc.aio.EOF:
            self.ended = True
            assert await self.call.code() == grpc.StatusCode.OK
            return None
        assert isinstance(message, pb.WatchJobsResponse)
        self.messages.append(message)
        for job in message.jobs:
            assert job.job_id not in self.finished, f"job {job.job_id} reported twice"
            self.finished[job.job_id] = job
        self.not_found.extend(message.not_found_job_ids)
        return message

    async def until_reported(self, job_ids: Iterable[int]) -> None:
        wanted = set(job_ids)
        while not wanted <= self.finished.keys() | set(self.not_found):
            assert await self.read() is not None, f"the stream ended without reporting {wanted}"

    async def until_end(self) -> None:
        while await self.read() is not None:
            pass

    def state(self, job_id: int) -> int:
        return self.finished[job_id].state


async def enqueue(coord: RunningCoordinator, *specs: jobs_pb2.JobSpec) -> list[int]:
    answer = await coord.queue.Enqueue(pb.EnqueueRequest(jobs=list(specs)))
    return [job.id for job in answer.jobs]


async def lease_all(coord: RunningCoordinator, count: int) -> dict[int, pb.LeasedJob]:
    leased = (await coord.queue.Lease(lease_request(max_jobs=count))).jobs
    assert len(leased) == count
    return {job.id: job for job in leased}


def completed(job: pb.LeasedJob) -> pb.CompletedJob:
    return pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=noop_result())


def fail(job: pb.LeasedJob, *, retryable: bool) -> pb.FailRequest:
    return pb.FailRequest(
        job_id=job.id, lease_token=job.lease_token, error_type="http_503", error_message="down", retryable=retryable
    )


async def test_snapshot_reports_finished_and_unknown_jobs_at_once(coord: RunningCoordinator) -> None:
    done, dead, cancelled, open_ = await enqueue(coord, noop(), noop(), noop(), noop())
    leased = await lease_all(coord, 4)
    await coord.queue.Complete(pb.CompleteRequest(jobs=[completed(leased[done])]))
    await coord.queue.Fail(fail(leased[dead], retryable=False))
    await coord.queue.Fail(pb.FailRequest(job_id=cancelled, lease_token=leased[cancelled].lease_token, release=True))
    await coord.admin.CancelJob(admin_pb2.CancelJobRequest(job_id=cancelled))
    unknown = open_ + 1000

    watch = Watch(coord, pb.WatchJobsRequest(job_ids=[open_, unknown, dead, done, cancelled, done]))
    first = await watch.read()
    assert first is not None
    assert set(watch.finished) == {done, dead, cancelled}
    assert list(first.not_found_job_ids) == [unknown]
    assert (first.watched_count, first.remaining_count) == (4, 1)
    assert (watch.state(done), watch.state(dead), watch.state(cancelled)) == (SUCCEEDED, DEAD, CANCELLED)
    assert watch.finished[dead].attempt == 1
    assert watch.finished[dead].last_error == "http_503: down"
    assert watch.finished[done].last_error == ""
    assert watch.finished[cancelled].attempt == 0  # released, then cancelled before another lease
    assert all(job.HasField("finished_at") for job in first.jobs)

    await coord.queue.Complete(pb.CompleteRequest(jobs=[completed(leased[open_])]))
    await watch.until_end()
    assert watch.state(open_) == SUCCEEDED
    assert watch.messages[-1].remaining_count == 0


async def test_jobs_are_reported_as_the_rpcs_finish_them(start_coordinator: StartCoordinator) -> None:
    coord = await start_coordinator(watch_recheck_seconds=60.0)  # only notifies can drive this test
    ids = await enqueue(coord, *[noop(retry_policy=jobs_pb2.RetryPolicy(maximum_attempts=2)) for _ in range(5)])
    watch = Watch(coord, pb.WatchJobsRequest(job_ids=ids))
    first = await watch.read()
    assert first is not None and (first.watched_count, first.remaining_count, list(first.jobs)) == (5, 5, [])
    to_complete, to_kill, to_retry, to_cancel_queued, to_cancel_leased = ids
    await coord.admin.CancelJob(admin_pb2.CancelJobRequest(job_id=to_cancel_queued))
    await watch.until_reported([to_cancel_queued])
    leased = await lease_all(coord, 4)

    await coord.queue.Complete(pb.CompleteRequest(jobs=[completed(leased[to_complete])]))
    await watch.until_reported([to_complete])
    await coord.queue.Fail(fail(leased[to_kill], retryable=False))
    await watch.until_reported([to_kill])
    await coord.admin.CancelJob(admin_pb2.CancelJobRequest(job_id=to_cancel_leased))
    held = pb.LeaseRef(job_id=to_cancel_leased, lease_token=leased[to_cancel_leased].lease_token)
    answer = await coord.queue.Heartbeat(pb.HeartbeatRequest(worker_id="w1", leases=[held]))
    assert answer.leases[0].status == pb.LEASE_STATUS_CANCELLED
    await watch.until_reported([to_cancel_leased])

    # A retryable failure with attempts left is no end: the job is queued again, not reported.
    await coord.queue.Fail(fail(leased[to_retry], retryable=True))
    assert to_retry not in watch.finished
    await coord.queue.Fail(fail((await lease_until_leased(coord, to_retry)), retryable=True))
    await watch.until_end()
    assert watch.state(to_retry) == DEAD
    assert watch.finished[to_retry].attempt == 2
    assert {job_id: watch.state(job_id) for job_id in ids} == {
        to_complete: SUCCEEDED,
        to_kill: DEAD,
        to_retry: DEAD,
        to_cancel_queued: CANCELLED,
        to_cancel_leased: CANCELLED,
    }


async def lease_until_leased(coord: RunningCoordinator, job_id: int) -> pb.LeasedJob:
    """Lease the job once its retry is due (the backoff is up to a second)."""

    async def leased() -> pb.LeasedJob | None:
        jobs = (await coord.queue.Lease(lease_request(wait=1.0))).jobs
        return next((job for job in jobs if job.id == job_id), None)

    found: pb.LeasedJob | None = await eventually(leased, what=f"job {job_id} to be leased again")
    assert found is not None
    return found


async def test_reaper_finishing_a_job_is_reported(start_coordinator: StartCoordinator) -> None:
    coord = await start_coordinator(lease_seconds=0.3, watch_recheck_seconds=60.0)
    (job_id,) = await enqueue(coord, noop(retry_policy=jobs_pb2.RetryPolicy(maximum_attempts=1)))
    watch = Watch(coord, pb.WatchJobsRequest(job_ids=[job_id]))
    await watch.read()
    await lease_all(coord, 1)  # and never heartbeat: the reaper ends it as dead
    await watch.until_end()
    assert watch.state(job_id) == DEAD
    assert watch.finished[job_id].last_error == "lease_expired: lease expired"


async def test_jobs_finishing_together_come_in_one_message(coord: RunningCoordinator) -> None:
    ids = await enqueue(coord, *[noop() for _ in range(50)])
    leased = await lease_all(coord, 50)
    watch = Watch(coord, pb.WatchJobsRequest(job_ids=ids))
    await watch.read()
    await coord.queue.Complete(pb.CompleteRequest(jobs=[completed(job) for job in leased.values()]))
    await watch.until_end()
    with_jobs = [message for message in watch.messages if message.jobs]
    assert len(with_jobs) == 1 and len(with_jobs[0].jobs) == 50


async def test_all_unfinished_watches_the_jobs_open_at_the_call(coord: RunningCoordinator) -> None:
    early_done, leased_id, queued = await enqueue(coord, noop(), noop(), noop())
    leased = await lease_all(coord, 2)  # the two oldest
    await coord.queue.Complete(pb.CompleteRequest(jobs=[completed(leased[early_done])]))
    # Ids and all_unfinished together: the union.
    watch = Watch(coord, pb.WatchJobsRequest(all_unfinished=True, job_ids=[early_done]))
    first = await watch.read()
    assert first is not None and (first.watched_count, first.remaining_count) == (3, 2)
    assert [job.job_id for job in first.jobs] == [early_done]
    (later,) = await enqueue(coord, noop())  # after the call: not watched

    await coord.queue.Complete(pb.CompleteRequest(jobs=[completed(leased[leased_id])]))
    await coord.admin.CancelJob(admin_pb2.CancelJobRequest(job_id=queued))
    await watch.until_end()
    assert set(watch.finished) == {early_done, queued, leased_id}
    assert later not in watch.finished


async def test_all_unfinished_on_an_empty_queue_ends_at_once(coord: RunningCoordinator) -> None:
    watch = Watch(coord, pb.WatchJobsRequest(all_unfinished=True))
    await watch.until_end()
    assert [(m.watched_count, m.remaining_count) for m in watch.messages] == [(0, 0)]


async def test_a_missed_notify_is_covered_by_the_periodic_recheck(
    start_coordinator: StartCoordinator, db: asyncpg.Pool
) -> None:
    coord = await start_coordinator(watch_recheck_seconds=0.3)
    finished_quietly, deleted = await enqueue(coord, noop(), noop())
    watch = Watch(coord, pb.WatchJobsRequest(job_ids=[finished_quietly, deleted]))
    await watch.read()
    # Behind the coordinator's back: no NOTIFY is sent.
    await db.execute("UPDATE jobs SET state = 'cancelled', finished_at = now() WHERE id = $1", finished_quietly)
    await db.execute("DELETE FROM jobs WHERE id = $1", deleted)
    await watch.until_end()
    assert watch.state(finished_quietly) == CANCELLED
    assert watch.not_found == [deleted]  # gone before it was seen to finish
    assert watch.messages[0].watched_count == 2


async def test_without_the_periodic_recheck_a_quiet_finish_waits_for_a_notify(
    start_coordinator: StartCoordinator, db: asyncpg.Pool
) -> None:
    """The counterpart of the test above: what it sees does come from the periodic re-check."""
    coord = await start_coordinator(watch_recheck_seconds=60.0)
    quiet, loud = await enqueue(coord, noop(), noop())
    watch = Watch(coord, pb.WatchJobsRequest(job_ids=[quiet, loud]))
    await watch.read()
    await db.execute("UPDATE jobs SET state = 'cancelled', finished_at = now() WHERE id = $1", quiet)
    await coord.admin.CancelJob(admin_pb2.CancelJobRequest(job_id=loud))
    await watch.until_end()  # the cancel's notify makes the stream re-check both
    assert set(watch.finished) == {quiet, loud}
    assert len([m for m in watch.messages if m.jobs]) == 1


async def test_drain_ends_the_stream_with_unavailable(coord: RunningCoordinator) -> None:
    (job_id,) = await enqueue(coord, noop())
    watch = Watch(coord, pb.WatchJobsRequest(job_ids=[job_id]))
    await watch.read()
    stopping = asyncio.ensure_future(coord.coordinator.stop(grace=10.0))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watch.read()
    await stopping
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(caught.value).reason == "DRAINING"


async def test_streams_are_bounded_per_coordinator(start_coordinator: StartCoordinator) -> None:
    coord = await start_coordinator(max_watch_streams=1)
    (job_id,) = await enqueue(coord, noop())
    first = Watch(coord, pb.WatchJobsRequest(job_ids=[job_id]))
    await first.read()
    registry = coord.coordinator.metrics.registry
    assert registry.get_sample_value("crawlfleet_watch_streams") == 1

    second = Watch(coord, pb.WatchJobsRequest(job_ids=[job_id]))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await second.read()
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = error_info(caught.value)
    assert (info.reason, info.metadata["limit"]) == ("RESOURCE_EXHAUSTED", "max_watch_streams")

    first.call.cancel()  # a client going away frees its place

    async def watch_again() -> bool:
        third = Watch(coord, pb.WatchJobsRequest(job_ids=[job_id]))
        try:
            await third.read()
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            return False
        third.call.cancel()
        return True

    await eventually(watch_again, what="a place for a new stream after the first was cancelled")

    async def none_open() -> bool:
        return registry.get_sample_value("crawlfleet_watch_streams") == 0

    await eventually(none_open, what="the stream gauge to fall to 0")


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.WatchJobsRequest(), "job_ids"),
        (pb.WatchJobsRequest(job_ids=range(1, MAX_WATCH_JOB_IDS + 2)), "job_ids"),
        (pb.WatchJobsRequest(job_ids=[5, 7, -1]), "job_ids[2]"),
        (pb.WatchJobsRequest(job_ids=[0], all_unfinished=True), "job_ids[0]"),
    ],
    ids=["nothing to watch", "too many ids", "negative id", "zero id"],
)
async def test_invalid_requests_name_the_field(
    coord: RunningCoordinator, request_: pb.WatchJobsRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await Watch(coord, request_).read()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).metadata["field"] == field


async def test_the_largest_watch_reports_unknown_ids_in_bounded_messages(coord: RunningCoordinator) -> None:
    (job_id,) = await enqueue(coord, noop())
    unknown = range(job_id + 1, job_id + MAX_WATCH_JOB_IDS)
    watch = Watch(coord, pb.WatchJobsRequest(job_ids=[job_id, *unknown]))
    first = await watch.read()
    assert first is not None and first.watched_count == 1
    await coord.admin.CancelJob(admin_pb2.CancelJobRequest(job_id=job_id))
    await watch.until_end()
    assert sorted(watch.not_found) == list(unknown)
    assert len(watch.messages) > 2  # split: one message would be too large
    assert all(m.remaining_count == 1 for m in watch.messages if m.not_found_job_ids)
    assert watch.state(job_id) == CANCELLED


async def test_finishes_notify_only_while_a_watch_is_open(
    coord: RunningCoordinator, db: asyncpg.Pool, db_dsn: str
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(db_dsn)
    await listener.add_listener(FINISHED_CHANNEL, lambda _conn, _pid, _channel, payload: heard.put_nowait(payload))

    async def cancel_notifies(job_id: int) -> bool:
        """Cancel the job, then send a marker: notifies arrive in commit order, the cancel's first."""
        await coord.admin.CancelJob(admin_pb2.CancelJobRequest(job_id=job_id))
        await db.execute("SELECT pg_notify($1, 'marker')", FINISHED_CHANNEL)
        before_marker = []
        while (payload := await asyncio.wait_for(heard.get(), READ_TIMEOUT)) != "marker":
            before_marker.append(payload)
        return bool(before_marker)

    async def watchers() -> int:
        return int(await db.fetchval("SELECT count(*) FROM job_watchers"))

    try:
        unwatched, expired, watched, after = await enqueue(coord, noop(), noop(), noop(), noop())
        assert not await cancel_notifies(unwatched)
        # A registration that expired (its coordinator went away) turns nothing on.
        await db.execute("INSERT INTO job_watchers VALUES (gen_random_uuid(), now() - interval '1 second')")
        assert not await cancel_notifies(expired)

        watch = Watch(coord, pb.WatchJobsRequest(job_ids=[watched]))
        await watch.read()
        assert await watchers() == 1  # registered, and the expired registration removed
        assert await cancel_notifies(watched)
        await watch.until_end()

        async def unregistered() -> bool:
            return await watchers() == 0

        await eventually(unregistered, what="the registration to go with the last stream")
        assert not await cancel_notifies(after)
    finally:
        await listener.close()
