"""The worker's own CPU per job, without a coordinator or a network: what the queue bench's
workers spend in Python per no-op job, measured without the noise of a shared machine.

    python bench/worker_job_cost.py [--jobs 100000] [--slots 200] [--runs 5]

One Worker in this process, with the standard noop handler, leases from an in-process fake that
answers each Lease at once with encoded jobs (parsed as the gRPC client would parse them) and
takes each Complete by encoding its request (as the client would). Its process CPU time from the
first Lease to the last settled Complete, divided by the jobs, is one run's figure; the fake's
own work is part of it but small and the same for every version of the worker. Prints one JSON
line: the runs' microseconds of CPU per job (min/median/max) and their wall time.
"""

# ruff: noqa: E402 (sys.path is fixed before the imports, see below)

from __future__ import annotations

import sys
from pathlib import Path

# As in bench/queue.py: bench/ first on sys.path would shadow the stdlib `queue`.
REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [str(REPO) if Path(p or ".").resolve() == REPO / "bench" else p for p in sys.path]

import argparse
import asyncio
import json
import logging
import statistics
import time
from collections.abc import Sequence
from typing import cast

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.client import CoordinatorClient
from crawlfleet.worker.handlers.noop import run_noop
from crawlfleet.worker.runner import Worker
from crawlfleet.worker.settings import WorkerSettings

LEASE_SECONDS = 30


class InstantCoordinator:
    """Answers Lease with the next jobs at once and takes every Complete; counts what it took."""

    def __init__(self, jobs: int) -> None:
        # Each job encoded on its own as a one-job LeaseResponse: concatenated they are a valid
        # LeaseResponse of those jobs, so an answer costs a join, not a message built per job.
        expires = int(time.time()) + 3600
        self._encoded = [
            pb.LeaseResponse(
                jobs=[
                    pb.LeasedJob(
                        id=job_id,
                        kind="noop",
                        lease_token=f"00000000-0000-4000-8000-{job_id:012d}",
                        attempt=1,
                        max_attempts=3,
                        spec=jobs_pb2.JobSpec(noop=jobs_pb2.NoopSpec()),
                        lease_expires_at=Timestamp(seconds=expires),
                    )
                ]
            ).SerializeToString()
            for job_id in range(1, jobs + 1)
        ]
        self._header = pb.LeaseResponse(lease_duration=Duration(seconds=LEASE_SECONDS)).SerializeToString()
        self._next = 0
        self.completed = 0
        self.done = asyncio.Event()

    async def lease(self, max_jobs: int, wait: float) -> pb.LeaseResponse:
        await asyncio.sleep(0)  # a real call yields to the loop
        if self._next >= len(self._encoded):
            await asyncio.Event().wait()  # a long-poll that only ends by cancellation
        chunk = self._encoded[self._next : self._next + max_jobs]
        self._next += len(chunk)
        return pb.LeaseResponse.FromString(self._header + b"".join(chunk))

    async def heartbeat(self, leases: Sequence[pb.LeaseRef], deadline: float = 10.0) -> pb.HeartbeatResponse:
        return pb.HeartbeatResponse(
            leases=[pb.LeaseState(job_id=ref.job_id, status=pb.LEASE_STATUS_EXTENDED) for ref in leases]
        )

    async def complete(self, jobs: Sequence[pb.CompletedJob], deadline: float = 10.0) -> None:
        pb.CompleteRequest(jobs=jobs).SerializeToString()  # what the client does to send it
        await asyncio.sleep(0)
        self.completed += len(jobs)
        if self.completed >= len(self._encoded):
            self.done.set()

    async def fail(self, request: pb.FailRequest, deadline: float = 10.0) -> pb.FailResponse:
        raise AssertionError(f"no job should fail: {request}")

    async def find_stored_images(self, sha256s: Sequence[str], deadline: float = 10.0) -> list[jobs_pb2.ImageResult]:
        return []

    async def close(self) -> None:
        pass


async def one_run(jobs: int, slots: int) -> tuple[float, float]:
    """CPU seconds and wall seconds of one worker draining `jobs` no-op jobs."""
    coordinator = InstantCoordinator(jobs)
    settings = WorkerSettings(worker_id="bench", slots=slots, complete_flush_interval=0.005)
    worker = Worker(settings, client=cast(CoordinatorClient, coordinator), handlers={"noop": run_noop})
    async with worker:
        cpu, wall = time.process_time(), time.perf_counter()
        run = asyncio.create_task(worker.run())
        await coordinator.done.wait()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await worker.shutdown()
        await run
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs per run")
    parser.add_argument("--slots", type=int, default=200, help="the worker's slots")
    parser.add_argument("--runs", type=int, default=5, help="runs, each with a fresh worker")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    per_job: list[float] = []
    walls: list[float] = []
    for _ in range(args.runs):
        cpu, wall = asyncio.run(one_run(args.jobs, args.slots))
        per_job.append(cpu / args.jobs * 1e6)
        walls.append(wall)
    print(
        json.dumps(
            {
                "jobs": args.jobs,
                "slots": args.slots,
                "runs": args.runs,
                "cpu_us_per_job": {
                    "min": round(min(per_job), 2),
                    "median": round(statistics.median(per_job), 2),
                    "max": round(max(per_job), 2),
                },
                "wall_s_median": round(statistics.median(walls), 3),
            }
        )
    )


if __name__ == "__main__":
    main()
