"""Reporting results: a batcher that groups successes into few ``Complete`` calls, and the retry
rule shared with ``Fail`` reports (retry transient errors until the caller says to stop)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, Protocol, TypeVar

from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.worker.backoff import Backoff
from crawlfleet.worker.client import duration
from crawlfleet.worker.errors import (
    CoordinatorError,
    CoordinatorFault,
    CoordinatorUnavailable,
    JobError,
    LeaseLost,
    RepeatedFault,
)
from crawlfleet.worker.leases import HeldLease

log = logging.getLogger(__name__)

Settled = Literal["completed", "lost", "rejected"]
Sleep = Callable[[float], Awaitable[None]]
_T = TypeVar("_T")
MAX_ERROR_MESSAGE = 2000  # characters of an error message sent in a Fail report
# Encoded results per Complete call: half the coordinator's default message limit (32 MiB), so a
# batch of large scrape results is never refused for its size.
MAX_COMPLETE_BATCH_BYTES = 16 * 1024 * 1024
MAX_FAULTS_IN_A_ROW = 4  # UNKNOWN/INTERNAL answers before a report counts as refused


class GaveUp(Exception):
    """The report was abandoned (lease gone or expired) before the coordinator took it."""


class CompleteSender(Protocol):
    """What the batcher needs of the coordinator client."""

    async def complete(self, jobs: Sequence[pb.CompletedJob]) -> None: ...


class FailSender(Protocol):
    """What failure reports need of the coordinator client."""

    async def fail(self, request: pb.FailRequest) -> pb.FailResponse: ...


async def retry_transient(
    op: Callable[[], Awaitable[_T]], *, keep_trying: Callable[[], bool], backoff: Backoff, sleep: Sleep
) -> _T:
    """Calls ``op`` until it succeeds, retrying ``CoordinatorUnavailable`` with backoff while
    ``keep_trying()`` holds (typically: the lease has not expired). Raises ``GaveUp`` after that,
    and ``RepeatedFault`` after ``MAX_FAULTS_IN_A_ROW`` unexpected failures in a row; other errors
    propagate."""
    faults = 0
    while True:
        if not keep_trying():
            raise GaveUp()
        try:
            result = await op()
        except CoordinatorUnavailable as exc:
            faults = faults + 1 if isinstance(exc, CoordinatorFault) else 0
            if faults >= MAX_FAULTS_IN_A_ROW:
                raise RepeatedFault(exc.code, exc.message, exc.info) from exc
            delay = backoff.next_delay()
            log.warning("report failed, retrying in %.2fs: %s", delay, exc)
            await sleep(delay)
        else:
            backoff.reset()
            return result


def fail_request(job: pb.LeasedJob, exc: JobError) -> pb.FailRequest:
    """The ``Fail`` report of a handler's ``JobError``."""
    request = pb.FailRequest(
        job_id=job.id,
        lease_token=job.lease_token,
        error_type=exc.error_type,
        error_message=exc.message,
        retryable=exc.retryable,
        release=exc.release,
    )
    if exc.retry_after is not None:
        request.retry_after.CopyFrom(duration(exc.retry_after))
    return request


def internal_failure(job: pb.LeasedJob, exc: Exception) -> pb.FailRequest:
    """The ``Fail`` report of an unexpected exception: retryable, it may be a passing condition."""
    return pb.FailRequest(
        job_id=job.id,
        lease_token=job.lease_token,
        error_type="internal",
        error_message=f"{type(exc).__name__}: {exc}",
        retryable=True,
    )


def rejected_result(job: pb.LeasedJob, error: CoordinatorError) -> pb.FailRequest:
    """The ``Fail`` report of a job whose result the coordinator refused: sending the same result
    again would be refused again, so the job fails for good, saying why (an operator can requeue it)."""
    return pb.FailRequest(
        job_id=job.id,
        lease_token=job.lease_token,
        error_type="result_rejected",
        error_message=f"the coordinator refused the result: {error.message}"[:MAX_ERROR_MESSAGE],
        retryable=False,
    )


def image_not_stored(job: pb.LeasedJob, error: CoordinatorError) -> pb.FailRequest:
    """The ``Fail`` report of a job whose result referred to images the coordinator no longer holds
    (``IMAGE_NOT_STORED``): given back without charging the attempt, to run again sending them."""
    return pb.FailRequest(
        job_id=job.id,
        lease_token=job.lease_token,
        error_type="image_not_stored",
        error_message=f"referenced images were removed meanwhile: {error.message}"[:MAX_ERROR_MESSAGE],
        retryable=True,
        release=True,
    )


def image_hashes_of(error: CoordinatorError) -> list[str]:
    """The images an ``IMAGE_NOT_STORED`` refusal names."""
    return [sha256 for sha256 in error.info.metadata.get("sha256s", "").split(",") if sha256]


def release_request(job: pb.LeasedJob) -> pb.FailRequest:
    """Gives a job back at shutdown: queued again at once, the attempt not charged."""
    return pb.FailRequest(
        job_id=job.id,
        lease_token=job.lease_token,
        error_type="shutdown",
        error_message="worker shutting down",
        retryable=True,
        release=True,
    )


async def report_fail(
    client: FailSender, lease: HeldLease, request: pb.FailRequest, *, sleep: Sleep = asyncio.sleep
) -> bool:
    """Sends ``Fail``, retrying transient errors until the lease is abandoned or its local expiry
    passes (then the coordinator reaps it). Returns whether the coordinator took the report."""
    what = "release" if request.release else "failure"
    try:
        await retry_transient(
            lambda: client.fail(request),
            keep_trying=lambda: not lease.abandoned and time.monotonic() < lease.deadline,
            backoff=Backoff(),
            sleep=sleep,
        )
    except GaveUp:
        lease.log.warning("gave up reporting the %s: the lease is gone", what)
    except LeaseLost:
        lease.log.warning("lease lost before the %s was reported", what)
    except CoordinatorError as exc:
        lease.log.error("the coordinator rejected the %s: %s", what, exc)
    else:
        lease.log.debug("%s reported", what)
        return True
    return False


class CompleteBatcher:
    """Collects successes and sends them in ``Complete`` calls of at most ``max_batch`` jobs and
    ``max_batch_bytes`` (one job always goes, whatever its size).

    A batch goes out when it is full or ``flush_interval`` after its first job arrived. Complete is
    all or nothing, so on ``LEASE_LOST`` the jobs it names are dropped and the rest is sent again; a
    batch the coordinator refuses is split until the refused job is alone, so one bad result never
    holds back the others. ``on_settled(job_id, outcome)`` is called once per job the batcher stops
    caring about, except for jobs the owner took back with ``discard``; for a refused job it is
    ``on_rejected(job_id, error)`` instead when given, so the owner can report the job another way.
    When ``on_completed(job_ids)`` is given, it stands for ``on_settled(job_id, "completed")`` of
    every job of an acknowledged call: one call per batch, not one per job.
    """

    def __init__(
        self,
        sender: CompleteSender,
        *,
        max_batch: int,
        flush_interval: float,
        on_settled: Callable[[int, Settled], None],
        on_rejected: Callable[[int, CoordinatorError], None] | None = None,
        on_completed: Callable[[list[int]], None] | None = None,
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
        max_batch_bytes: int = MAX_COMPLETE_BATCH_BYTES,
    ) -> None:
        self._sender = sender
        self._max_batch = max_batch
        self._max_batch_bytes = max_batch_bytes
        self._sizes: dict[int, int] = {}  # encoded size of each pending job
        self._pending_bytes = 0
        self._flush_interval = flush_interval
        self._on_settled = on_settled
        self._on_rejected = on_rejected
        self._on_completed = on_completed
        self._backoff = backoff or Backoff()
        self._sleep = sleep
        self._pending: dict[int, pb.CompletedJob] = {}
        self._discarded: set[int] = set()
        self._has_items = asyncio.Event()
        self._full = asyncio.Event()
        self._closed = False

    def submit(self, job: pb.CompletedJob) -> None:
        """Queues one success for the next batch."""
        if self._closed:
            raise RuntimeError("CompleteBatcher is closed")
        job_id = job.job_id
        if self._discarded:
            self._discarded.discard(job_id)
        if job_id in self._sizes:
            self._forget_size(job_id)  # a job submitted again replaces its earlier report
        self._pending[job_id] = job
        size = job.ByteSize()
        self._sizes[job_id] = size
        self._pending_bytes += size
        pending = len(self._pending)
        if pending == 1:
            self._has_items.set()  # the run loop waits for this only when nothing is pending
        if pending >= self._max_batch or self._pending_bytes >= self._max_batch_bytes:
            self._full.set()

    def discard(self, job_id: int) -> None:
        """Forgets a job whose lease was lost, cancelled or expired: it must not be reported."""
        self._forget_size(job_id)
        if self._pending.pop(job_id, None) is None:
            # It may be in the batch being sent right now; that batch checks this set.
            self._discarded.add(job_id)

    def close(self) -> None:
        """No more submissions: ``run`` sends what is pending without waiting, then returns."""
        self._closed = True
        self._has_items.set()
        self._full.set()

    @property
    def pending(self) -> int:
        """Jobs waiting for the next batch."""
        return len(self._pending)

    async def run(self) -> None:
        """Sends batches until closed and drained."""
        while True:
            if not self._pending:
                if self._closed:
                    return
                self._has_items.clear()
                await self._has_items.wait()
                continue
            if (
                not self._closed
                and len(self._pending) < self._max_batch
                and self._pending_bytes < self._max_batch_bytes
            ):
                # Give other successes a moment to share the call; a full batch goes at once.
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._flush_interval):
                        await self._full.wait()
            await self._send(self._take_batch())

    def _take_batch(self) -> list[pb.CompletedJob]:
        # The oldest first; never copy all that is pending, it may be far more than a batch.
        ids: list[int] = []
        size = 0
        for job_id in itertools.islice(self._pending, self._max_batch):
            job_size = self._sizes[job_id]
            if ids and size + job_size > self._max_batch_bytes:
                break
            ids.append(job_id)
            size += job_size
        batch = [self._pending.pop(job_id) for job_id in ids]
        for job_id in ids:
            self._forget_size(job_id)
        self._discarded.clear()
        return batch

    def _forget_size(self, job_id: int) -> None:
        self._pending_bytes -= self._sizes.pop(job_id, 0)

    async def _send(self, batch: list[pb.CompletedJob]) -> None:
        while batch:
            if self._discarded:
                batch = [job for job in batch if job.job_id not in self._discarded]
                if not batch:
                    return
            try:
                await self._send_until_given_up(batch)
            except GaveUp:
                return  # every job of the batch was discarded meanwhile
            except LeaseLost as exc:
                lost = exc.job_ids
                if not lost and len(batch) > 1:
                    # The coordinator did not say which: find out one job at a time.
                    for job in batch:
                        await self._send([job])
                    return
                lost = lost or frozenset(job.job_id for job in batch)
                for job in batch:
                    if job.job_id in lost:
                        log.warning("lease lost before complete, dropped", extra={"job_id": job.job_id})
                        self._on_settled(job.job_id, "lost")
                batch = [job for job in batch if job.job_id not in lost]
                continue
            except CoordinatorError as exc:
                if len(batch) > 1:
                    # One bad job must not sink the others: isolate it.
                    for job in batch:
                        await self._send([job])
                    return
                job_id = batch[0].job_id
                log.error("complete refused: %s", exc, extra={"job_id": job_id})
                if self._on_rejected is not None:
                    self._on_rejected(job_id, exc)
                else:
                    self._on_settled(job_id, "rejected")
                return
            discarded = self._discarded
            completed = [job.job_id for job in batch]
            if discarded:
                completed = [job_id for job_id in completed if job_id not in discarded]
            if self._on_completed is not None:
                self._on_completed(completed)
            else:
                for job_id in completed:
                    self._on_settled(job_id, "completed")
            return

    async def _send_until_given_up(self, batch: list[pb.CompletedJob]) -> None:
        ids = [job.job_id for job in batch]
        await retry_transient(
            lambda: self._sender.complete(batch),
            keep_trying=lambda: any(job_id not in self._discarded for job_id in ids),
            backoff=self._backoff,
            sleep=self._sleep,
        )
