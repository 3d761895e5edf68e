"""The Worker against a fake coordinator client: no sockets, no sleeps."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from crawlfleet.common.rpc_errors import ErrorDetails
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.client import CoordinatorClient
from crawlfleet.worker.errors import CoordinatorError, JobError, WorkerCrashed
from crawlfleet.worker.handlers import Handler, JobContext
from crawlfleet.worker.handlers.noop import run_noop
from crawlfleet.worker.pipeline.settings import ScrapeSettings
from crawlfleet.worker.runner import Worker, egress_summary, unreported_bound
from crawlfleet.worker.settings import WorkerSettings
from tests.unit.worker.fakes import FakeCoordinator

OK = jobs_pb2.JobResult(noop=jobs_pb2.NoopResult())


def leased(job_id: int, kind: str = "noop") -> pb.LeasedJob:
    return pb.LeasedJob(id=job_id, kind=kind, lease_token=f"tok-{job_id}", attempt=1, max_attempts=3)


def batch(*jobs: pb.LeasedJob) -> pb.LeaseResponse:
    return pb.LeaseResponse(jobs=jobs, lease_duration=Duration(seconds=30))


def settings(**overrides: object) -> WorkerSettings:
    values: dict[str, object] = {
        "worker_id": "w-test",
        "slots": 2,
        "shutdown_grace": 5.0,
        "complete_flush_interval": 0.0,
    }
    values.update(overrides)
    return WorkerSettings(**values)  # type: ignore[arg-type]


class Gate:
    """A handler that records starts and waits until the test opens it for that job."""

    def __init__(self) -> None:
        self.started: set[int] = set()
        self.gates: dict[int, asyncio.Event] = {}
        self.changed = asyncio.Condition()

    def gate(self, job_id: int) -> asyncio.Event:
        return self.gates.setdefault(job_id, asyncio.Event())

    async def __call__(self, job: pb.LeasedJob, ctx: JobContext) -> jobs_pb2.JobResult:
        self.started.add(job.id)
        async with self.changed:
            self.changed.notify_all()
        await self.gate(job.id).wait()
        if job.id % 10 == 9:
            raise JobError("nope", error_type="gate_failure", retryable=False, retry_after=2.0)
        if job.id % 10 == 8:
            raise RuntimeError("handler bug")
        return OK

    async def wait_started(self, *job_ids: int) -> None:
        async with asyncio.timeout(5), self.changed:
            await self.changed.wait_for(lambda: self.started >= set(job_ids))


async def start(worker: Worker) -> asyncio.Task[None]:
    await worker.__aenter__()
    return asyncio.create_task(worker.run())


async def test_leases_only_free_slots_and_reports_outcomes() -> None:
    coordinator = FakeCoordinator([batch(leased(1), leased(9)), batch(leased(18))])
    gate = Gate()
    worker = Worker(settings(), client=cast(CoordinatorClient, coordinator), handlers={"noop": gate})
    run = await start(worker)
    await gate.wait_started(1, 9)
    assert coordinator.lease_calls == [2]  # both slots busy: no further Lease call
    gate.gate(1).set()
    await coordinator.wait_for(lambda: coordinator.completed == [1] and len(coordinator.lease_calls) == 2)
    assert coordinator.lease_calls == [2, 1]  # one slot was free
    gate.gate(9).set()
    gate.gate(18).set()
    await coordinator.wait_for(lambda: len(coordinator.failed) == 2)
    by_id = {request.job_id: request for request in coordinator.failed}
    assert by_id[9].error_type == "gate_failure" and not by_id[9].retryable
    assert by_id[9].retry_after.seconds == 2
    assert by_id[18].error_type == "internal" and by_id[18].retryable
    await worker.shutdown()
    await asyncio.wait_for(run, 5)
    assert coordinator.closed
    assert worker.held_leases == 0


async def test_shutdown_releases_jobs_still_running_after_the_grace() -> None:
    coordinator = FakeCoordinator([batch(leased(1), leased(2))])
    gate = Gate()
    worker = Worker(settings(shutdown_grace=0.0), client=cast(CoordinatorClient, coordinator), handlers={"noop": gate})
    run = await start(worker)
    await gate.wait_started(1, 2)
    await asyncio.gather(worker.shutdown(), worker.shutdown())  # safe to call twice
    await asyncio.wait_for(run, 5)
    assert sorted(request.job_id for request in coordinator.failed) == [1, 2]
    assert all(request.release and request.error_type == "shutdown" for request in coordinator.failed)
    assert coordinator.completed == []


async def test_shutdown_lets_jobs_finish_within_the_grace() -> None:
    coordinator = FakeCoordinator([batch(leased(1))])
    gate = Gate()
    worker = Worker(settings(), client=cast(CoordinatorClient, coordinator), handlers={"noop": gate})
    run = await start(worker)
    await gate.wait_started(1)
    shutdown = asyncio.create_task(worker.shutdown())
    await asyncio.wait_for(coordinator.poll_cancelled.wait(), 5)  # leasing stopped at once
    gate.gate(1).set()  # finishes during the grace period
    await asyncio.wait_for(shutdown, 5)
    await asyncio.wait_for(run, 5)
    assert coordinator.completed == [1]
    assert coordinator.failed == []


async def test_lost_lease_cancels_the_job_and_reports_nothing() -> None:
    coordinator = FakeCoordinator([batch(leased(1))])
    coordinator.heartbeat_status[1] = pb.LEASE_STATUS_CANCELLED
    gate = Gate()
    worker = Worker(
        settings(heartbeat_fraction=0.0001), client=cast(CoordinatorClient, coordinator), handlers={"noop": gate}
    )
    run = await start(worker)
    await gate.wait_started(1)
    await coordinator.wait_for(lambda: bool(coordinator.heartbeats) and worker.held_leases == 0)
    await worker.shutdown()
    await asyncio.wait_for(run, 5)
    assert coordinator.completed == [] and coordinator.failed == []


async def test_a_crashed_side_task_stops_the_worker_loudly() -> None:
    coordinator = FakeCoordinator([batch(leased(1))])

    async def broken_heartbeat(*args: object, **kwargs: object) -> pb.HeartbeatResponse:
        raise ZeroDivisionError("bug")

    coordinator.heartbeat = broken_heartbeat  # type: ignore[method-assign]
    gate = Gate()
    worker = Worker(
        settings(heartbeat_fraction=0.0001), client=cast(CoordinatorClient, coordinator), handlers={"noop": gate}
    )
    run = await start(worker)
    with pytest.raises(WorkerCrashed):
        await asyncio.wait_for(run, 5)
    assert [request.job_id for request in coordinator.failed if request.release] == [1]
    await worker.__aexit__(None, None, None)


async def test_noop_handler() -> None:
    handler: Handler = run_noop
    worker = Worker(settings(), client=cast(CoordinatorClient, FakeCoordinator()))
    await worker.__aenter__()
    try:
        ctx = cast(JobContext, None)
        ok = pb.LeasedJob(id=1, kind="noop", spec=jobs_pb2.JobSpec(noop=jobs_pb2.NoopSpec()))
        assert (await handler(ok, ctx)).HasField("noop")
        failing = pb.LeasedJob(
            id=2,
            kind="noop",
            spec=jobs_pb2.JobSpec(noop=jobs_pb2.NoopSpec(fail_message="asked to", fail_retryable=True)),
        )
        with pytest.raises(JobError) as exc_info:
            await handler(failing, ctx)
        assert (exc_info.value.error_type, exc_info.value.retryable) == ("noop_failure", True)
    finally:
        await worker.shutdown()


async def test_outcomes_are_summed_up_in_one_line_not_per_job(caplog: pytest.LogCaptureFixture) -> None:
    coordinator = FakeCoordinator([batch(leased(1), leased(9))])
    gate = Gate()
    worker = Worker(settings(), client=cast(CoordinatorClient, coordinator), handlers={"noop": gate})
    with caplog.at_level(logging.INFO):
        run = await start(worker)
        await gate.wait_started(1, 9)
        gate.gate(1).set()
        gate.gate(9).set()
        await coordinator.wait_for(lambda: coordinator.completed == [1] and len(coordinator.failed) == 1)
        await coordinator.wait_for(lambda: worker.held_leases == 0)
        await worker.shutdown()
        await asyncio.wait_for(run, 5)
    messages = [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if "job started" in m or "job succeeded" in m]
    assert [m for m in messages if "job failed" in m]  # failures still get their own line
    [summary] = [m for m in messages if m.startswith("jobs in the last")]
    assert summary.endswith(": 1 succeeded, 1 failed, 0 skipped, 0 released, 0 lost; 0 in flight")


async def test_a_refused_result_fails_that_job_for_good_and_the_others_complete() -> None:
    coordinator = FakeCoordinator([batch(leased(1), leased(2), leased(3))])
    coordinator.refused_results = {2}
    worker = Worker(
        settings(slots=3, complete_flush_interval=1.0),
        client=cast(CoordinatorClient, coordinator),
        handlers={"noop": run_noop},
    )
    run = await start(worker)
    await coordinator.wait_for(lambda: len(coordinator.completed) == 2 and len(coordinator.failed) == 1)
    await worker.shutdown()
    await asyncio.wait_for(run, 5)
    assert sorted(coordinator.completed) == [1, 3]
    (failure,) = coordinator.failed
    assert (failure.job_id, failure.error_type, failure.retryable) == (2, "result_rejected", False)
    assert "refused the result" in failure.error_message
    assert worker.held_leases == 0


async def test_a_result_referring_to_images_no_longer_stored_gives_the_job_back() -> None:
    """IMAGE_NOT_STORED (a purge removed an image the result referred to): the job is released,
    not failed, so that it runs again and sends the images."""
    coordinator = FakeCoordinator([batch(leased(1), leased(2))])
    coordinator.refused_results = {2}
    coordinator.refusal = CoordinatorError(
        grpc.StatusCode.FAILED_PRECONDITION,
        "not stored",
        ErrorDetails(reason="IMAGE_NOT_STORED", metadata={"job_id": "2", "sha256s": "ab" * 32}),
    )
    worker = Worker(
        settings(slots=2, complete_flush_interval=1.0),
        client=cast(CoordinatorClient, coordinator),
        handlers={"noop": run_noop},
    )
    run = await start(worker)
    await coordinator.wait_for(lambda: len(coordinator.completed) == 1 and len(coordinator.failed) == 1)
    await worker.shutdown()
    await asyncio.wait_for(run, 5)
    (failure,) = coordinator.failed
    assert (failure.job_id, failure.error_type, failure.retryable, failure.release) == (
        2,
        "image_not_stored",
        True,
        True,
    )
    assert worker.held_leases == 0


async def test_unacknowledged_results_hold_back_leasing() -> None:
    """While Completes go unanswered, a worker stops leasing once its backlog is full, instead of
    piling up finished jobs (and leases to heartbeat) without bound."""
    slots = 10
    bound = unreported_bound(settings(slots=slots))
    batches = [batch(*(leased(b * slots + i + 1) for i in range(slots))) for b in range(bound // slots + 5)]
    coordinator = FakeCoordinator(batches)
    coordinator.completes_paused.set()
    worker = Worker(settings(slots=slots), client=cast(CoordinatorClient, coordinator), handlers={"noop": run_noop})
    run = await start(worker)
    # Every finished job waits for its Complete; at the bound the lease loop asks for no more.
    await coordinator.wait_for(lambda: worker.held_leases == bound)
    assert worker._backlog.room == 0
    assert len(coordinator.lease_calls) == bound // slots
    coordinator.completes_resumed.set()
    coordinator.completes_paused.clear()
    await coordinator.wait_for(lambda: len(coordinator.completed) == len(batches) * slots, timeout=20)
    await worker.shutdown()
    await asyncio.wait_for(run, 5)


def test_the_start_line_says_what_the_egress_guard_allows() -> None:
    assert egress_summary(settings()) == "public addresses only"
    allowing = settings(scrape=ScrapeSettings(allow_loopback=True, egress_allow=("10.1.0.0/16",)))
    assert egress_summary(allowing) == "public addresses and 10.1.0.0/16, loopback"


async def test_a_skipped_job_is_neither_a_failure_nor_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    coordinator = FakeCoordinator([batch(leased(1), leased(2))])

    async def obeying(job: pb.LeasedJob, ctx: JobContext) -> jobs_pb2.JobResult:
        if job.id == 1:
            raise JobError(
                "robots.txt of shop.example disallows /private", error_type="robots_disallowed", retryable=False
            )
        raise JobError(
            "robots.txt of shop.example is unreachable", error_type="robots_unreachable", retryable=True, release=True
        )

    worker = Worker(settings(), client=cast(CoordinatorClient, coordinator), handlers={"noop": obeying})
    with caplog.at_level(logging.INFO):
        run = await start(worker)
        await coordinator.wait_for(lambda: len(coordinator.failed) == 2 and worker.held_leases == 0)
        await worker.shutdown()
        await asyncio.wait_for(run, 5)
    reports = {request.job_id: request for request in coordinator.failed}
    assert (reports[1].error_type, reports[1].retryable, reports[1].release) == ("robots_disallowed", False, False)
    assert (reports[2].error_type, reports[2].release) == ("robots_unreachable", True)
    outcomes = worker.metrics.jobs["noop"]
    assert (outcomes.skipped, outcomes.released, outcomes.failed) == (1, 1, 0)
    skipped = [r for r in caplog.records if "job skipped" in r.getMessage()]
    assert [r.levelno for r in skipped] == [logging.INFO]
