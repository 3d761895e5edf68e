"""Bounds on what one Complete may carry, and on the request bytes the coordinator handles at once."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2

from crawlfleet.common import rpc_errors
from crawlfleet.common.result_limits import MAX_LINKS, MAX_MAIN_TEXT_BYTES
from crawlfleet.coordinator.inflight import BUDGET_LIMIT
from crawlfleet.coordinator.limits import ServerLimits
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import error_info, eventually, lease_request, scrape

MiB = 1024 * 1024


def page(text_bytes: int, **fields: object) -> jobs_pb2.JobResult:
    result = jobs_pb2.ScrapeResult(
        final_url="https://big.example/",
        status_code=200,
        rendered_with=jobs_pb2.RENDER_MODE_HTTP,
        main_text="x" * text_bytes,
        **fields,  # type: ignore[arg-type]
    )
    return jobs_pb2.JobResult(scrape=result)


async def lease_jobs(coord: RunningCoordinator, count: int) -> list[pb.LeasedJob]:
    await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[scrape(f"https://big.example/{n}") for n in range(count)]))
    jobs = list((await coord.queue.Lease(lease_request(max_jobs=count))).jobs)
    assert len(jobs) == count
    return sorted(jobs, key=lambda job: job.id)


def complete(job: pb.LeasedJob, result: jobs_pb2.JobResult) -> pb.CompleteRequest:
    return pb.CompleteRequest(jobs=[pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=result)])


async def test_a_complete_over_the_message_limit_is_refused(start_coordinator: StartCoordinator) -> None:
    coord = await start_coordinator(limits=ServerLimits(max_message_bytes=1 * MiB))
    (job,) = await lease_jobs(coord, 1)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await coord.queue.Complete(complete(job, page(MiB + 1024)), timeout=10)
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (refused.value.details() or "")
    await coord.queue.Complete(complete(job, page(1024)), timeout=10)  # the lease is intact


@pytest.mark.parametrize(
    ("result", "field"),
    [
        (page(MAX_MAIN_TEXT_BYTES + 1), "jobs[0].result.scrape.main_text"),
        (page(10, links=[jobs_pb2.Link(url="https://l.example/")] * (MAX_LINKS + 1)), "jobs[0].result.scrape.links"),
    ],
    ids=["main_text", "links"],
)
async def test_a_result_past_a_field_cap_is_refused_with_the_field(
    coord: RunningCoordinator, result: jobs_pb2.JobResult, field: str
) -> None:
    (job,) = await lease_jobs(coord, 1)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await coord.queue.Complete(complete(job, result), timeout=10)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(refused.value).metadata["field"] == field


async def test_large_completes_past_the_bytes_in_flight_are_refused_with_a_retry_hint(
    start_coordinator: StartCoordinator, db: asyncpg.Pool
) -> None:
    coord = await start_coordinator(limits=ServerLimits(max_message_bytes=1 * MiB, max_request_bytes_in_flight=1 * MiB))
    budget = coord.coordinator.request_bytes.budget
    first, second = await lease_jobs(coord, 2)
    large = page(700 * 1024)

    # Hold the first job's row: its Complete waits in the database with its bytes charged.
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", first.id)
        held = asyncio.ensure_future(coord.queue.Complete(complete(first, large), timeout=30))
        await eventually(lambda: _true(budget.in_use > 0), what="the first Complete to be charged")

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await coord.queue.Complete(complete(second, large), timeout=10)
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_info(refused.value).metadata["limit"] == BUDGET_LIMIT
        status = rpc_errors.rich_status(refused.value)
        assert status is not None
        hints = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
        assert len(hints) == 1
        # Small calls are never charged, so leases stay alive meanwhile.
        beat = await coord.queue.Heartbeat(
            pb.HeartbeatRequest(worker_id="w1", leases=[pb.LeaseRef(job_id=second.id, lease_token=second.lease_token)])
        )
        assert beat.leases[0].status == pb.LEASE_STATUS_EXTENDED
    await held
    assert budget.in_use == 0
    await coord.queue.Complete(complete(second, large), timeout=10)  # the retry fits now
    registry = coord.coordinator.metrics.registry
    assert registry.get_sample_value("crawlfleet_requests_refused_for_bytes_total") == 1.0


async def _true(value: bool) -> bool:
    return value
