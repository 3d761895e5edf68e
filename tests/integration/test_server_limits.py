"""Transport bounds of the coordinator: streams per connection, and wake-ups counted per new job."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest

from crawlfleet.coordinator.limits import ServerLimits
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import job_queue_pb2_grpc
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import eventually, lease_request, noop

WAITERS = 5


def claims(coord: RunningCoordinator) -> float:
    """Claim statements the coordinator's Lease calls have run."""
    value = coord.coordinator.metrics.registry.get_sample_value("crawlfleet_lease_claims_total")
    return value or 0.0


def rpc_count(coord: RunningCoordinator, method: str) -> float:
    registry = coord.coordinator.metrics.registry
    total = 0.0
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == "crawlfleet_rpc_requests_total" and sample.labels["method"] == method:
                total += sample.value
    return total


@contextlib.asynccontextmanager
async def own_connection(coord: RunningCoordinator) -> AsyncIterator[job_queue_pb2_grpc.JobQueueAsyncStub]:
    """A stub on a connection of its own (channels otherwise share one per target)."""
    channel = grpc.aio.insecure_channel(coord.address, options=[("grpc.use_local_subchannel_pool", 1)])
    try:
        yield job_queue_pb2_grpc.JobQueueStub(channel)
    finally:
        await channel.close()


async def enqueue(stub: job_queue_pb2_grpc.JobQueueAsyncStub, count: int) -> None:
    await stub.Enqueue(pb.EnqueueRequest(jobs=[noop() for _ in range(count)]), timeout=10)


async def test_an_enqueue_of_one_job_wakes_one_waiting_lease(start_coordinator: StartCoordinator) -> None:
    # No periodic re-check during the test: every claim after the first ones is a wake-up's.
    coord = await start_coordinator(recheck_seconds=60.0)
    await coord.coordinator._listener.connected.wait()  # type: ignore[union-attr]
    leases = [
        asyncio.ensure_future(coord.queue.Lease(lease_request(f"w{i}", max_jobs=1, wait=15.0), timeout=20))
        for i in range(WAITERS)
    ]
    await eventually(lambda: _true(claims(coord) == WAITERS), what="every Lease to claim once and wait")

    await enqueue(coord.queue, 1)
    done, waiting = await asyncio.wait(leases, return_when=asyncio.FIRST_COMPLETED)
    assert [len(task.result().jobs) for task in done] == [1]
    # One wake-up, one more claim; the others still wait, unwoken.
    assert claims(coord) == WAITERS + 1

    # The rest get a job each from a batch of as many jobs, one claim each.
    await enqueue(coord.queue, len(waiting))
    rest = await asyncio.gather(*waiting)
    assert [len(response.jobs) for response in rest] == [1] * len(waiting)
    assert claims(coord) == 2 * WAITERS


async def test_calls_past_the_stream_bound_wait_for_a_free_stream(start_coordinator: StartCoordinator) -> None:
    coord = await start_coordinator(recheck_seconds=60.0, limits=ServerLimits(max_concurrent_streams=2))
    await coord.coordinator._listener.connected.wait()  # type: ignore[union-attr]
    async with own_connection(coord) as crowded, own_connection(coord) as other:
        polls = [
            asyncio.ensure_future(crowded.Lease(lease_request(f"w{i}", max_jobs=1, wait=15.0), timeout=20))
            for i in range(2)
        ]
        await eventually(lambda: _true(claims(coord) == 2), what="both long-polls to reach the server")

        # A third call on the full connection never reaches the server before its deadline ...
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await crowded.Enqueue(pb.EnqueueRequest(jobs=[noop()]), timeout=1.0)
        assert refused.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert rpc_count(coord, "crawlfleet.v1.JobQueue/Enqueue") == 0

        # ... while another connection is served, and the job it adds frees a stream of the first.
        await enqueue(other, 1)
        done, _ = await asyncio.wait(polls, return_when=asyncio.FIRST_COMPLETED)
        assert [len(task.result().jobs) for task in done] == [1]
        await enqueue(crowded, 1)
        await asyncio.gather(*polls)


async def _true(value: bool) -> bool:
    return value
