"""Prometheus metrics of an in-process coordinator and worker, scraped over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from crawlfleet.common.metrics_http import MetricsEndpoint
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.runner import Worker
from crawlfleet.worker.settings import WorkerSettings
from tests.conftest import StartCoordinator
from tests.helpers import eventually, lease_request, noop, noop_result

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SUCCEEDING = 5


async def scrape(client: httpx.AsyncClient, port: int) -> Samples:
    response = await client.get(f"http://127.0.0.1:{port}/metrics")
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@contextlib.asynccontextmanager
async def running_worker(address: str) -> AsyncIterator[tuple[Worker, int]]:
    settings = WorkerSettings(
        coordinator=address, worker_id="metrics", slots=4, lease_wait=1.0, shutdown_grace=0.0, kinds=("noop",)
    )
    async with Worker(settings) as worker:
        # What worker.main does for the worker process.
        endpoint = MetricsEndpoint.start("127.0.0.1:0", worker.metrics.registry)
        assert endpoint is not None
        task = asyncio.create_task(worker.run())
        try:
            yield worker, endpoint.port
        finally:
            await worker.shutdown()
            await task
            await endpoint.stop()


async def test_metrics_reflect_what_the_coordinator_and_worker_did(start_coordinator: StartCoordinator) -> None:
    coord = await start_coordinator(metrics_listen="127.0.0.1:0", metrics_refresh_seconds=0.2)
    port = coord.coordinator.metrics_port
    assert port is not None

    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await coord.queue.Enqueue(pb.EnqueueRequest())
    assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    failing = jobs_pb2.JobSpec(noop=jobs_pb2.NoopSpec(fail_message="boom", fail_retryable=False))
    await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[*(noop() for _ in range(SUCCEEDING)), failing]))

    async with httpx.AsyncClient(timeout=5.0) as http, running_worker(coord.address) as (worker, worker_port):

        async def settled() -> Samples:
            samples = await scrape(http, port)
            done = value(samples, "crawlfleet_jobs", state="succeeded") == SUCCEEDING
            dead = value(samples, "crawlfleet_jobs", state="dead") == 1
            return samples if done and dead else {}

        samples = await eventually(settled, what="the job gauges to show every job finished")

        async def worker_settled() -> Samples:
            found = await scrape(http, worker_port)
            ok = value(found, "crawlfleet_worker_jobs_total", kind="noop", outcome="succeeded") == SUCCEEDING
            return found if ok and worker.held_leases == 0 else {}

        worker_samples = await eventually(worker_settled, what="the worker to count its jobs")

    # Coordinator: RPCs by method and code, transitions, gauges.
    lease = "crawlfleet.v1.JobQueue/Lease"
    enqueue = "crawlfleet.v1.JobQueue/Enqueue"
    assert value(samples, "crawlfleet_rpc_requests_total", method=lease, code="OK") > 0
    assert value(samples, "crawlfleet_rpc_requests_total", method=enqueue, code="INVALID_ARGUMENT") == 1
    assert value(samples, "crawlfleet_rpc_requests_total", method=enqueue, code="OK") == 1
    assert value(samples, "crawlfleet_rpc_duration_seconds_count", method=enqueue) == 2
    assert value(samples, "crawlfleet_jobs_enqueued_total") == SUCCEEDING + 1
    assert value(samples, "crawlfleet_leases_granted_total") == SUCCEEDING + 1
    assert value(samples, "crawlfleet_jobs_completed_total") == SUCCEEDING
    assert value(samples, "crawlfleet_jobs_dead_total") == 1
    assert value(samples, "crawlfleet_jobs_retried_total") == 0
    assert value(samples, "crawlfleet_leases_lost_total") == 0
    assert value(samples, "crawlfleet_jobs", state="queued") == 0
    assert value(samples, "crawlfleet_jobs", state="leased") == 0
    assert value(samples, "crawlfleet_database_up") == 1

    # Worker: outcomes by kind, in flight, report times, no RPC errors.
    assert value(worker_samples, "crawlfleet_worker_jobs_total", kind="noop", outcome="failed") == 1
    assert value(worker_samples, "crawlfleet_worker_jobs_total", kind="noop", outcome="lost") == 0
    assert ("crawlfleet_worker_jobs_total", frozenset({("kind", "noop"), ("outcome", "fenced")})) in worker_samples
    assert value(worker_samples, "crawlfleet_worker_jobs_in_flight") == 0
    assert value(worker_samples, "crawlfleet_worker_stage_seconds_count", stage="report") >= 2
    assert value(worker_samples, "crawlfleet_worker_stage_seconds_count", stage="fetch") == 0
    assert value(worker_samples, "crawlfleet_worker_browser_restarts_total") == 0
    assert not any(name == "crawlfleet_worker_lease_rpc_errors_total" for name, _ in worker_samples)


async def test_stale_leases_are_counted_by_code_and_as_lost(start_coordinator: StartCoordinator) -> None:
    coord = await start_coordinator(metrics_listen="127.0.0.1:0")
    assert coord.coordinator.metrics_port is not None
    (job,) = (await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[noop()]))).jobs
    (leased,) = (await coord.queue.Lease(lease_request(max_jobs=1))).jobs
    stale = str(uuid.uuid4())
    heartbeat = pb.HeartbeatRequest(
        worker_id="w1",
        leases=[
            pb.LeaseRef(job_id=job.id, lease_token=leased.lease_token),
            pb.LeaseRef(job_id=job.id + 1, lease_token=stale),
        ],
    )
    await coord.queue.Heartbeat(heartbeat)
    with pytest.raises(grpc.aio.AioRpcError) as lost:
        await coord.queue.Complete(
            pb.CompleteRequest(jobs=[pb.CompletedJob(job_id=job.id, lease_token=stale, result=noop_result())])
        )
    assert lost.value.code() is grpc.StatusCode.ABORTED
    complete = "crawlfleet.v1.JobQueue/Complete"
    port = coord.coordinator.metrics_port
    async with httpx.AsyncClient(timeout=5.0) as http:

        async def counted() -> Samples:
            found = await scrape(http, port)
            return found if value(found, "crawlfleet_rpc_requests_total", method=complete, code="ABORTED") else {}

        # The abort reaches the caller before the server's interceptor has counted the call.
        samples = await eventually(counted, what="the refused Complete to be counted")
    assert value(samples, "crawlfleet_rpc_requests_total", method=complete, code="ABORTED") == 1
    assert value(samples, "crawlfleet_leases_extended_total") == 1
    assert value(samples, "crawlfleet_leases_lost_total") == 1
    assert value(samples, "crawlfleet_jobs_completed_total") == 0


async def test_worker_counts_failed_lease_calls() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    async with httpx.AsyncClient(timeout=5.0) as http, running_worker(address) as (_, port):

        async def failed_leases() -> float:
            samples = await scrape(http, port)
            return value(samples, "crawlfleet_worker_lease_rpc_errors_total", method="Lease", code="UNAVAILABLE")

        await eventually(failed_leases, what="a failed Lease to be counted")
