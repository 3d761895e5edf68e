"""The leases a worker holds: heartbeats in their own task, lost/cancelled answers, self-fencing."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from crawlfleet.common.logs import JobLog, job_log
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.worker.backoff import Backoff
from crawlfleet.worker.errors import CoordinatorError, CoordinatorUnavailable, WorkerError

log = logging.getLogger(__name__)

# Stop a job this long before the lease would run out, to cover network latency and clock drift.
FENCE_MARGIN_MAX = 1.0
FENCE_MARGIN_FRACTION = 0.1
MIN_HEARTBEAT_DEADLINE = 0.5
# Leases named in one Heartbeat call. The coordinator refuses more than 10,000 (see HeartbeatRequest);
# a worker holding more sends several calls at once, so no backlog can make its heartbeat unsendable.
MAX_LEASES_PER_HEARTBEAT = 1000
# Removed leases stay in the fencing heap until due; rebuild it when stale entries outnumber the live
# ones by this much, so memory stays bounded and the rebuild is O(1) per job on average.
FENCE_HEAP_SLACK = 1024

Clock = Callable[[], float]


@dataclass(eq=False, slots=True)
class HeldLease:
    """One leased job, from the Lease answer until its report is settled or it is abandoned."""

    job: pb.LeasedJob
    lease_duration: float
    deadline: float  # monotonic time the lease may end at, unless extended
    logger: logging.Logger  # what ``log`` writes to
    task: asyncio.Task[None] | None = None
    running: bool = True  # its handler has not returned yet
    abandoned: bool = False  # lost, cancelled or self-fenced: nothing may be reported
    holds_report_slot: bool = False  # counted among the finished jobs awaiting their Complete

    @property
    def log(self) -> JobLog:
        """A logger whose records carry the job's context; made when used, as most jobs never log."""
        return job_log(self.logger, self.job)

    @property
    def job_id(self) -> int:
        """The leased job's id."""
        return self.job.id

    def ref(self) -> pb.LeaseRef:
        """What Heartbeat needs to name this lease."""
        return pb.LeaseRef(job_id=self.job.id, lease_token=self.job.lease_token)

    def fence_at(self) -> float:
        """When the worker stops the job itself if the lease was not extended by then."""
        return self.deadline - min(FENCE_MARGIN_MAX, self.lease_duration * FENCE_MARGIN_FRACTION)


def local_deadline(
    *, start: float, lease_duration: float, expires_at: float | None, now: float, wall_now: float
) -> float:
    """The monotonic time a lease ends, judged conservatively.

    ``start`` is a monotonic time no earlier than when the coordinator started the lease term;
    ``expires_at`` is the coordinator's wall-clock expiry. The wall clock is trusted only to shorten
    the term: when the clocks disagree by more than the lease, the duration alone is used.
    """
    deadline = start + lease_duration
    if expires_at is not None:
        remaining = expires_at - wall_now
        if remaining > 0:
            deadline = min(deadline, now + remaining)
    return deadline


class LeaseDeadlines:
    """The local deadlines of one Lease answer's jobs, worked out once per distinct expiry: one
    claim gives all its jobs the same one, so this is one conversion per answer, not per job."""

    def __init__(self, *, start: float, lease_duration: float, now: float, wall_now: float) -> None:
        self._start, self._lease_duration, self._now, self._wall_now = start, lease_duration, now, wall_now
        self._by_expiry: dict[tuple[int, int], float] = {}
        self._without_expiry: float | None = None

    def of(self, job: pb.LeasedJob) -> float:
        """The monotonic time ``job``'s lease ends (see local_deadline)."""
        if not job.HasField("lease_expires_at"):
            if self._without_expiry is None:
                self._without_expiry = self._deadline(None)
            return self._without_expiry
        expiry = job.lease_expires_at
        key = (expiry.seconds, expiry.nanos)
        deadline = self._by_expiry.get(key)
        if deadline is None:
            deadline = self._by_expiry[key] = self._deadline(expiry.ToNanoseconds() / 1e9)
        return deadline

    def _deadline(self, expires_at: float | None) -> float:
        return local_deadline(
            start=self._start,
            lease_duration=self._lease_duration,
            expires_at=expires_at,
            now=self._now,
            wall_now=self._wall_now,
        )


class HeartbeatRejected(WorkerError):
    """The coordinator refused a Heartbeat as such (not a passing outage): the worker must stop."""


class HeartbeatSender(Protocol):
    """What the keeper needs of the coordinator client."""

    async def heartbeat(self, leases: Sequence[pb.LeaseRef], deadline: float = ...) -> pb.HeartbeatResponse: ...


class LeaseKeeper:
    """Heartbeats all held leases once per interval (in calls of at most ``MAX_LEASES_PER_HEARTBEAT``)
    and stops jobs whose lease is gone. Transient failures are retried with backoff until the leases
    run out; a refusal of the call itself raises ``HeartbeatRejected``, which stops the worker.

    Self-fencing costs O(log held) per lease: a min-heap holds ``(fence_at, job_id)`` entries, checked
    only when due. Entries of removed leases are skipped when popped (lazy deletion); an entry whose
    lease was extended meanwhile is pushed again with the new time. The keeper is woken only when a
    new lease is due before its current wake-up.

    ``on_abandon(lease, why)`` is called once for each lease lost, cancelled or self-fenced, after it
    was removed and marked abandoned; it must stop the job's work and drop any pending report.
    """

    def __init__(
        self,
        client: HeartbeatSender,
        *,
        fraction: float,
        on_abandon: Callable[[HeldLease, str], None],
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
    ) -> None:
        self._client = client
        self._fraction = fraction
        self._on_abandon = on_abandon
        self._clock = clock
        self._wall_clock = wall_clock
        self._held: dict[int, HeldLease] = {}
        self._fences: list[tuple[float, int]] = []  # a heap; may hold stale entries, see the class doc
        self._changed = asyncio.Event()
        self._stopping = False
        self._next_beat = math.inf
        self._wake_at = math.inf  # when the sleeping run loop wakes up unless woken earlier
        self._backoff = Backoff()
        self._failing_since: float | None = None

    def __len__(self) -> int:
        return len(self._held)

    def leases(self) -> list[HeldLease]:
        """A snapshot of the held leases."""
        return list(self._held.values())

    def add(self, lease: HeldLease) -> None:
        """Starts heartbeating ``lease``."""
        self.add_many((lease,))

    def add_many(self, leases: Sequence[HeldLease]) -> None:
        """Starts heartbeating ``leases`` (one Lease answer's), with one look at the clock and at
        most one wake-up for them all: the keeper is woken only if one of them is due before its
        current wake-up; most leases are not."""
        if not leases:
            return
        held, fences, push = self._held, self._fences, heapq.heappush
        earliest_fence = math.inf
        for lease in leases:
            job_id = lease.job.id
            held[job_id] = lease
            fence_at = lease.fence_at()
            push(fences, (fence_at, job_id))
            if fence_at < earliest_fence:
                earliest_fence = fence_at
        earliest_beat = min(self._interval(lease) for lease in leases)
        if len(fences) > 2 * len(held) + FENCE_HEAP_SLACK:
            self._rebuild_fences()
        beat_at = self._clock() + earliest_beat
        if beat_at < self._next_beat:
            self._next_beat = beat_at
        if beat_at < self._wake_at or earliest_fence < self._wake_at:
            self._changed.set()

    def get(self, job_id: int) -> HeldLease | None:
        """The held lease of ``job_id``, if any."""
        return self._held.get(job_id)

    def remove(self, job_id: int) -> HeldLease | None:
        """Stops heartbeating a job whose report was settled (or released)."""
        return self._held.pop(job_id, None)

    def abandon(self, lease: HeldLease, why: str) -> None:
        """Drops ``lease`` for good: its job is stopped and nothing is reported for it."""
        if lease.abandoned:
            return
        lease.abandoned = True
        if self._held.get(lease.job_id) is lease:
            del self._held[lease.job_id]
        lease.log.warning("abandoning job: %s", why)
        self._on_abandon(lease, why)

    def stop(self) -> None:
        """Makes ``run`` return."""
        self._stopping = True
        self._changed.set()

    async def run(self) -> None:
        """Heartbeats until stopped; also wakes for the earliest self-fencing time."""
        while not self._stopping:
            now = self._clock()
            self._fence_expired(now)
            if not self._held:
                self._next_beat = math.inf
                self._fences.clear()  # only stale entries are left
            if now >= self._next_beat:
                await self._beat()
                continue
            wake = min(self._next_beat, self._fences[0][0]) if self._fences else self._next_beat
            self._wake_at = wake
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if math.isinf(wake) else wake - now):
                    await self._changed.wait()
            self._wake_at = -math.inf  # awake: adds need not wake it, the loop looks at the heap next

    def _interval(self, lease: HeldLease) -> float:
        return lease.lease_duration * self._fraction

    def _fence_expired(self, now: float) -> None:
        fences = self._fences
        while fences and fences[0][0] <= now:
            _, job_id = heapq.heappop(fences)
            lease = self._held.get(job_id)
            if lease is None:
                continue  # settled or abandoned since it was pushed
            fence_at = lease.fence_at()
            if now >= fence_at:
                self.abandon(lease, "self-fenced: the lease could not be extended before it ran out")
            else:
                heapq.heappush(fences, (fence_at, job_id))  # extended since it was pushed

    def _rebuild_fences(self) -> None:
        self._fences = [(lease.fence_at(), job_id) for job_id, lease in self._held.items()]
        heapq.heapify(self._fences)

    async def _beat(self) -> None:
        leases = list(self._held.values())
        interval = min(self._interval(lease) for lease in leases)
        sent_at = self._clock()
        # Never wait on a hung call past the earliest fencing time.
        earliest_fence = min(lease.fence_at() for lease in leases)
        deadline = max(MIN_HEARTBEAT_DEADLINE, min(interval, earliest_fence - sent_at))
        chunks = [leases[i : i + MAX_LEASES_PER_HEARTBEAT] for i in range(0, len(leases), MAX_LEASES_PER_HEARTBEAT)]
        try:
            if len(chunks) == 1:  # the usual case: no task per call
                responses = [await self._client.heartbeat([lease.ref() for lease in leases], deadline)]
            else:
                responses = await asyncio.gather(
                    *(self._client.heartbeat([lease.ref() for lease in chunk], deadline) for chunk in chunks)
                )
        except CoordinatorUnavailable as exc:
            if self._failing_since is None:
                self._failing_since = sent_at
            delay = min(interval, self._backoff.next_delay())
            log.warning(
                "heartbeat failed for %.1fs, retrying in %.2fs: %s",
                self._clock() - self._failing_since,
                delay,
                exc,
            )
            self._next_beat = self._clock() + delay
            return
        except CoordinatorError as exc:
            # The coordinator refused the request itself (a bad token, a broken contract): sending it
            # again cannot help, and the leases would only run out. Fail loudly instead.
            raise HeartbeatRejected(f"the coordinator refused the heartbeat: {exc}") from exc
        if self._failing_since is not None:
            log.info("heartbeats succeed again after %.1fs", self._clock() - self._failing_since)
            self._failing_since = None
        self._backoff.reset()
        for chunk, response in zip(chunks, responses, strict=True):
            self.apply(chunk, response, sent_at)
        self._next_beat = sent_at + interval

    def apply(self, leases: Sequence[HeldLease], response: pb.HeartbeatResponse, sent_at: float) -> None:
        """Applies per-lease answers: extend the local expiry, or abandon lost and cancelled jobs.

        A lease answered COMPLETED was settled by its Complete, whose answer removes it; a lease
        left unanswered keeps its current expiry.
        """
        states = {state.job_id: state for state in response.leases}
        now, wall_now = self._clock(), self._wall_clock()
        for lease in leases:
            state = states.get(lease.job_id)
            if state is None or lease.abandoned or self._held.get(lease.job_id) is not lease:
                continue  # settled meanwhile, or not answered (then its expiry stands)
            if state.status == pb.LEASE_STATUS_EXTENDED:
                expires_at = None
                if state.HasField("lease_expires_at"):
                    expires_at = state.lease_expires_at.ToNanoseconds() / 1e9
                fenced_before = lease.fence_at()
                lease.deadline = local_deadline(
                    start=sent_at,
                    lease_duration=lease.lease_duration,
                    expires_at=expires_at,
                    now=now,
                    wall_now=wall_now,
                )
                if lease.fence_at() < fenced_before:
                    # A later time is picked up when the old entry comes due; an earlier one is not.
                    heapq.heappush(self._fences, (lease.fence_at(), lease.job_id))
            elif state.status == pb.LEASE_STATUS_COMPLETED:
                # Its Complete committed before this heartbeat was answered: settled, nothing to stop.
                continue
            elif state.status == pb.LEASE_STATUS_LOST:
                self.abandon(lease, "the coordinator says the lease is lost")
            elif state.status == pb.LEASE_STATUS_CANCELLED:
                self.abandon(lease, "an operator cancelled the job")
            else:
                lease.log.warning("heartbeat answered an unknown lease status %d", state.status)
