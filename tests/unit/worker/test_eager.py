"""Eager kinds: no-op jobs finish inline in the lease loop's step and report through the batcher."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import cast

from google.protobuf.duration_pb2 import Duration

from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.client import CoordinatorClient
from crawlfleet.worker.context import Handler, JobContext
from crawlfleet.worker.eager import eager_runs, finish_noop
from crawlfleet.worker.handlers.noop import run_noop
from crawlfleet.worker.runner import Worker
from tests.unit.worker.fakes import FakeCoordinator
from tests.unit.worker.test_runner import OK, batch, settings, start


def noop_job(job_id: int, spec: jobs_pb2.NoopSpec | None = None) -> pb.LeasedJob:
    return pb.LeasedJob(
        id=job_id,
        kind="noop",
        lease_token=f"tok-{job_id}",
        attempt=1,
        max_attempts=3,
        spec=jobs_pb2.JobSpec(noop=spec or jobs_pb2.NoopSpec()),
    )


class RecordingCoordinator(FakeCoordinator):
    """Also keeps every completed job as sent, lease token and result included."""

    def __init__(self, batches: Sequence[pb.LeaseResponse] = ()) -> None:
        super().__init__(batches)
        self.completions: list[pb.CompletedJob] = []

    async def complete(self, jobs: Sequence[pb.CompletedJob], deadline: float = 10.0) -> None:
        self.completions.extend(jobs)
        await self.changed()  # also while Completes are paused
        await super().complete(jobs, deadline)


class CountingHandler:
    """A handler that records which jobs it ran."""

    def __init__(self) -> None:
        self.ran: list[int] = []

    async def __call__(self, job: pb.LeasedJob, ctx: JobContext) -> jobs_pb2.JobResult:
        self.ran.append(job.id)
        return OK


async def stop(worker: Worker, run: asyncio.Task[None]) -> None:
    await worker.shutdown()
    await asyncio.wait_for(run, 5)


def test_a_plain_noop_finishes_at_once_with_what_its_handler_returns() -> None:
    result = jobs_pb2.JobResult()
    assert finish_noop(noop_job(1), result)
    assert result == jobs_pb2.JobResult(noop=jobs_pb2.NoopResult())


def test_a_noop_that_sleeps_or_fails_is_left_to_its_handler() -> None:
    for spec in (jobs_pb2.NoopSpec(duration=Duration(nanos=1)), jobs_pb2.NoopSpec(fail_message="asked to")):
        result = jobs_pb2.JobResult()
        assert not finish_noop(noop_job(1, spec), result)
        assert not result.HasField("noop")
    assert finish_noop(noop_job(1, jobs_pb2.NoopSpec(duration=Duration())), jobs_pb2.JobResult())


def test_only_kinds_served_by_their_standard_handler_are_eager() -> None:
    own: Handler = CountingHandler()
    assert set(eager_runs({"noop": run_noop})) == {"noop"}
    assert eager_runs({"noop": own}) == {}
    assert eager_runs({"scrape": own}) == {}


async def test_noop_jobs_complete_exactly_once_under_their_lease_tokens_without_tasks() -> None:
    jobs = [noop_job(i) for i in range(1, 51)]
    coordinator = RecordingCoordinator([batch(*jobs[:2]), batch(*jobs[2:])])
    worker = Worker(settings(slots=100), client=cast(CoordinatorClient, coordinator), handlers={"noop": run_noop})
    run = await start(worker)
    await coordinator.wait_for(lambda: len(coordinator.completed) == len(jobs) and worker.held_leases == 0)
    assert sorted(coordinator.completed) == [job.id for job in jobs]  # each once
    assert {(c.job_id, c.lease_token) for c in coordinator.completions} == {(j.id, j.lease_token) for j in jobs}
    assert all(c.result == OK for c in coordinator.completions)
    assert not worker._job_tasks and worker._backlog.running == worker._backlog.unreported == 0
    await stop(worker, run)
    assert sorted(coordinator.completed) == [job.id for job in jobs]  # nothing sent again at shutdown


async def test_noops_that_sleep_or_fail_still_run_through_their_handler() -> None:
    coordinator = RecordingCoordinator([batch(noop_job(1, jobs_pb2.NoopSpec(fail_message="asked to")), noop_job(2))])
    worker = Worker(settings(), client=cast(CoordinatorClient, coordinator), handlers={"noop": run_noop})
    run = await start(worker)
    await coordinator.wait_for(lambda: coordinator.completed == [2] and len(coordinator.failed) == 1)
    assert (coordinator.failed[0].job_id, coordinator.failed[0].error_type) == (1, "noop_failure")
    await stop(worker, run)


async def test_other_kinds_and_a_noop_handler_of_its_own_run_as_tasks() -> None:
    scrape = pb.LeasedJob(id=7, kind="scrape", lease_token="tok-7", attempt=1, max_attempts=3)
    coordinator = RecordingCoordinator([batch(noop_job(1), scrape)])
    own_noop, scrapes = CountingHandler(), CountingHandler()
    worker = Worker(
        settings(), client=cast(CoordinatorClient, coordinator), handlers={"noop": own_noop, "scrape": scrapes}
    )
    run = await start(worker)
    await coordinator.wait_for(lambda: sorted(coordinator.completed) == [1, 7])
    assert (own_noop.ran, scrapes.ran) == ([1], [7])
    await stop(worker, run)


async def test_an_eager_job_held_at_shutdown_is_reported_before_the_worker_stops() -> None:
    coordinator = RecordingCoordinator([batch(noop_job(1), noop_job(2))])
    coordinator.completes_paused.set()
    worker = Worker(settings(), client=cast(CoordinatorClient, coordinator), handlers={"noop": run_noop})
    run = await start(worker)
    await coordinator.wait_for(lambda: len(coordinator.completions) == 2)
    assert worker.held_leases == 2  # heartbeated until the Complete settles
    shutdown = asyncio.create_task(worker.shutdown())
    coordinator.completes_resumed.set()
    await asyncio.wait_for(shutdown, 5)
    await asyncio.wait_for(run, 5)
    assert sorted(coordinator.completed) == [1, 2] and not coordinator.failed
