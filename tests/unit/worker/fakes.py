"""Fakes of the coordinator client for pure-logic worker tests (no sockets)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence

import grpc

from crawlfleet.common.rpc_errors import ErrorDetails
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.errors import CoordinatorError, CoordinatorFault, CoordinatorUnavailable, LeaseLost
from crawlfleet.worker.leases import HeldLease


def unavailable() -> CoordinatorUnavailable:
    return CoordinatorUnavailable(grpc.StatusCode.UNAVAILABLE, "down", ErrorDetails())


def fault() -> CoordinatorFault:
    return CoordinatorFault(grpc.StatusCode.INTERNAL, "internal error", ErrorDetails())


def lease_lost(job_ids: str | None) -> LeaseLost:
    metadata = {} if job_ids is None else {"job_ids": job_ids}
    return LeaseLost(
        grpc.StatusCode.ABORTED, "stale", ErrorDetails(reason="LEASE_LOST", domain="crawlfleet.v1", metadata=metadata)
    )


def rejected() -> CoordinatorError:
    return CoordinatorError(grpc.StatusCode.INVALID_ARGUMENT, "bad", ErrorDetails(reason="INVALID_FIELD"))


def completed(job_id: int) -> pb.CompletedJob:
    return pb.CompletedJob(job_id=job_id, lease_token=f"tok-{job_id}")


def held(job_id: int, *, deadline: float = 1e12, lease_duration: float = 30.0) -> HeldLease:
    job = pb.LeasedJob(id=job_id, kind="noop", lease_token=f"tok-{job_id}", attempt=1, max_attempts=3)
    return HeldLease(job=job, lease_duration=lease_duration, deadline=deadline, logger=logging.getLogger("t"))


class Notifier:
    """Counts calls and wakes waiters when a predicate over the fake's state holds."""

    def __init__(self) -> None:
        self._cond = asyncio.Condition()

    async def changed(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self._cond:
            await self._cond.wait_for(predicate)


class FakeCompleteSender:
    """Answers Complete calls from a script of exceptions (None = success)."""

    def __init__(self, script: Sequence[Exception | None] = ()) -> None:
        self.calls: list[list[int]] = []
        self.script: deque[Exception | None] = deque(script)

    async def complete(self, jobs: Sequence[pb.CompletedJob]) -> None:
        self.calls.append([job.job_id for job in jobs])
        outcome = self.script.popleft() if self.script else None
        if outcome is not None:
            raise outcome


class FakeCoordinator(Notifier):
    """A whole coordinator client: scripted Lease answers, then long-polls that never return."""

    def __init__(self, batches: Sequence[pb.LeaseResponse] = ()) -> None:
        super().__init__()
        self.batches = deque(batches)
        self.lease_calls: list[int] = []
        self.completed: list[int] = []
        self.complete_calls = 0
        self.failed: list[pb.FailRequest] = []
        self.heartbeats: list[list[int]] = []
        self.heartbeat_status: dict[int, pb.LeaseStatus.ValueType] = {}
        self.refused_results: set[int] = set()  # Complete refuses any batch holding one of these
        self.refusal = rejected()  # what it refuses them with
        self.completes_paused = asyncio.Event()  # set: Complete calls wait until it is cleared
        self.completes_resumed = asyncio.Event()
        self.closed = False
        self.poll_cancelled = asyncio.Event()

    async def lease(self, max_jobs: int, wait: float) -> pb.LeaseResponse:
        self.lease_calls.append(max_jobs)
        await self.changed()
        if self.batches:
            return self.batches.popleft()
        try:
            await asyncio.Event().wait()  # a long-poll that only ends by cancellation
        except asyncio.CancelledError:
            self.poll_cancelled.set()
            raise
        raise AssertionError("unreachable")

    async def heartbeat(self, leases: Sequence[pb.LeaseRef], deadline: float = 10.0) -> pb.HeartbeatResponse:
        self.heartbeats.append([lease.job_id for lease in leases])
        await self.changed()
        return pb.HeartbeatResponse(
            leases=[
                pb.LeaseState(
                    job_id=lease.job_id, status=self.heartbeat_status.get(lease.job_id, pb.LEASE_STATUS_EXTENDED)
                )
                for lease in leases
            ]
        )

    async def complete(self, jobs: Sequence[pb.CompletedJob], deadline: float = 10.0) -> None:
        self.complete_calls += 1
        if self.completes_paused.is_set():
            await self.completes_resumed.wait()
        if any(job.job_id in self.refused_results for job in jobs):
            await self.changed()
            raise self.refusal
        self.completed.extend(job.job_id for job in jobs)
        await self.changed()

    async def fail(self, request: pb.FailRequest, deadline: float = 10.0) -> pb.FailResponse:
        self.failed.append(request)
        await self.changed()
        return pb.FailResponse()

    async def find_stored_images(self, sha256s: Sequence[str], deadline: float = 10.0) -> list[jobs_pb2.ImageResult]:
        return []  # nothing stored: every image is processed and sent

    async def close(self) -> None:
        self.closed = True
