"""WatchJobs streams: watched jobs reported as they reach a terminal state.

A stream first sends a snapshot (the jobs already terminal, the ids not found), then waits for
``NOTIFY crawlfleet_jobs_finished``, which the coordinator's one LISTEN connection fans out to
every stream, and re-checks the ids it still waits for with one query. Re-checks of a stream are
spaced out, so that a burst of notifies costs one query, and spaced further for large watches, so
that one stream's database work stays bounded; a periodic re-check covers notifies that never
came. The decisions are in docs/queue-semantics.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass

from crawlfleet.coordinator.api import convert
from crawlfleet.coordinator.api.admin_convert import job_state
from crawlfleet.coordinator.errors import Draining, InvalidArgument, ResourceExhausted
from crawlfleet.coordinator.metrics import CoordinatorMetrics
from crawlfleet.coordinator.security.principal import visible_owner
from crawlfleet.coordinator.storage.rows import WatchedJob
from crawlfleet.coordinator.storage.watch import WatcherRegistration, WatchQueries
from crawlfleet.coordinator.wakeup import Wakeup
from crawlfleet.v1 import job_queue_pb2 as pb

MAX_WATCH_JOB_IDS = 100_000
# all_unfinished on a larger backlog is refused: a stream holds its ids in memory.
MAX_WATCH_UNFINISHED = 1_000_000
# Re-checks of one stream are at least this far apart: a burst of finishes costs one query...
WATCH_COALESCE_SECONDS = 0.25
# ...and further apart for large watches: about this many ids re-checked a second per stream.
WATCH_PROBES_PER_SECOND = 100_000
MAX_JOBS_PER_RESPONSE = 1000
MAX_NOT_FOUND_PER_RESPONSE = 10_000
# Estimated bytes of one response: well below gRPC's default 4 MiB receive limit of clients.
MAX_RESPONSE_BYTES = 1024 * 1024
_JOB_BYTES = 48  # a FinishedJob without its last_error, generously
_ID_BYTES = 10  # a varint of an id


@dataclass(frozen=True, kw_only=True)
class WatchTarget:
    """What a WatchJobs request asks for: distinct ids, ascending, and/or every unfinished job."""

    job_ids: tuple[int, ...]
    all_unfinished: bool
    # The owner the caller is confined to (None: any job); another owner's job is not found.
    owner: str | None = None


def watch_target(request: pb.WatchJobsRequest) -> WatchTarget:
    """Validate a request; raises InvalidArgument naming the field."""
    ids = request.job_ids
    if len(ids) > MAX_WATCH_JOB_IDS:
        raise InvalidArgument("job_ids", f"at most {MAX_WATCH_JOB_IDS} ids per watch, got {len(ids)}")
    if not ids and not request.all_unfinished:
        raise InvalidArgument("job_ids", "name the jobs to watch, or set all_unfinished")
    bad = next((i for i, job_id in enumerate(ids) if job_id <= 0), None)
    if bad is not None:
        convert.positive_id(ids[bad], f"job_ids[{bad}]")
    return WatchTarget(job_ids=tuple(sorted(set(ids))), all_unfinished=request.all_unfinished, owner=visible_owner())


class WatchProgress:
    """The ids a stream still waits for, and the responses that report rows of them."""

    def __init__(self, job_ids: Sequence[int]) -> None:
        self.pending = list(job_ids)
        self.watched_count = len(self.pending)
        self._snapshot_taken = False

    def report(self, rows: Sequence[WatchedJob]) -> list[pb.WatchJobsResponse]:
        """Responses for re-checked rows; the first call (the snapshot) always gives one.

        Ids not found by the snapshot were never watched; a watched job found missing later
        (deleted before it was seen to finish) is reported not found and no longer waited for.
        """
        first = not self._snapshot_taken
        self._snapshot_taken = True
        finished = sorted((r for r in rows if r.state is not None), key=lambda r: (r.finished_at, r.id))
        missing = sorted(r.id for r in rows if r.state is None)
        if first:
            self.watched_count -= len(missing)
        done = {r.id for r in rows}
        remaining_before = len(self.pending) - (len(missing) if first else 0)
        self.pending = [job_id for job_id in self.pending if job_id not in done]
        responses = list(self._batches(finished, missing, remaining_before, missing_watched=not first))
        if first and not responses:
            responses.append(pb.WatchJobsResponse(remaining_count=remaining_before, watched_count=self.watched_count))
        return responses

    def _batches(
        self, finished: list[WatchedJob], missing: list[int], remaining: int, *, missing_watched: bool
    ) -> Iterator[pb.WatchJobsResponse]:
        """Messages of bounded count and size: not-found ids first, then the finished jobs."""
        jobs = [finished_job(row) for row in finished]
        next_missing = next_job = 0
        while next_missing < len(missing) or next_job < len(jobs):
            chunk = missing[next_missing : next_missing + MAX_NOT_FOUND_PER_RESPONSE]
            next_missing += len(chunk)
            size = _ID_BYTES * len(chunk)
            batch: list[pb.FinishedJob] = []
            while next_job < len(jobs) and len(batch) < MAX_JOBS_PER_RESPONSE:
                size += _JOB_BYTES + len(jobs[next_job].last_error)
                if batch and size > MAX_RESPONSE_BYTES:
                    break
                batch.append(jobs[next_job])
                next_job += 1
            remaining -= len(batch) + (len(chunk) if missing_watched else 0)
            yield pb.WatchJobsResponse(
                jobs=batch, not_found_job_ids=chunk, remaining_count=remaining, watched_count=self.watched_count
            )


def finished_job(row: WatchedJob) -> pb.FinishedJob:
    assert row.state is not None
    return pb.FinishedJob(
        job_id=row.id,
        state=job_state(row.state),
        attempt=row.attempt or 0,
        finished_at=convert.timestamp(row.finished_at),
        last_error=row.last_error or "",
    )


class WatchStreams:
    """The WatchJobs streams of one coordinator: their bound, their wake-ups and their drain."""

    def __init__(
        self,
        queries: WatchQueries,
        registration: WatcherRegistration,
        finished: Wakeup,
        metrics: CoordinatorMetrics,
        *,
        max_streams: int,
        recheck_seconds: float,
    ) -> None:
        self._queries = queries
        self._registration = registration
        self._finished = finished
        self._metrics = metrics
        self._max_streams = max_streams
        self._recheck_seconds = recheck_seconds
        self._draining = asyncio.Event()
        self.open_streams = 0

    def drain(self) -> None:
        """End every stream with UNAVAILABLE (reason DRAINING) and refuse new ones."""
        self._draining.set()

    async def stream(self, request: pb.WatchJobsRequest) -> AsyncIterator[pb.WatchJobsResponse]:
        """The responses of one WatchJobs call, until every watched job is reported."""
        target = watch_target(request)
        if self._draining.is_set():
            raise Draining()
        if self.open_streams >= self._max_streams:
            raise ResourceExhausted(
                "max_watch_streams",
                f"this coordinator serves at most {self._max_streams} WatchJobs streams; retry later",
            )
        self.open_streams += 1
        self._metrics.watch_streams.inc()
        try:
            # Registered before the snapshot: finishes that commit after it notify.
            await self._registration.acquire()
            try:
                async for response in self._watch(target):
                    yield response
            finally:
                await self._registration.release()
        finally:
            self.open_streams -= 1
            self._metrics.watch_streams.dec()

    async def _watch(self, target: WatchTarget) -> AsyncIterator[pb.WatchJobsResponse]:
        signal = self._finished.current()  # taken before each check: a finish after it wakes us
        progress = WatchProgress(await self._watched_ids(target))
        rows = await self._queries.finished_or_missing(progress.pending, find_missing=True, owner=target.owner)
        for response in progress.report(rows):
            yield response
        clock = asyncio.get_running_loop()
        periodic_at = clock.time() + self._recheck_seconds
        while progress.pending:
            # Let a burst of notifies gather, then wait for one, or for the periodic re-check.
            await self._wait(None, max(WATCH_COALESCE_SECONDS, len(progress.pending) / WATCH_PROBES_PER_SECOND))
            await self._wait(signal, periodic_at - clock.time())
            signal = self._finished.current()
            # The periodic re-check also looks for ids gone missing (a watched job deleted before it
            # was seen to finish); it runs on time however often notifies come.
            periodic = clock.time() >= periodic_at
            if periodic:
                periodic_at = clock.time() + self._recheck_seconds
            rows = await self._queries.finished_or_missing(progress.pending, find_missing=periodic, owner=target.owner)
            for response in progress.report(rows):
                yield response

    async def _watched_ids(self, target: WatchTarget) -> list[int]:
        if not target.all_unfinished:
            return list(target.job_ids)
        unfinished = await self._queries.unfinished_ids(MAX_WATCH_UNFINISHED, owner=target.owner)
        if not unfinished.complete:
            raise ResourceExhausted(
                "max_watch_unfinished",
                f"more than {MAX_WATCH_UNFINISHED} jobs are unfinished; watch them by id, in parts",
            )
        return sorted(set(target.job_ids).union(unfinished.ids))

    async def _wait(self, signal: asyncio.Event | None, timeout: float) -> None:
        """Until signal fires (if given) or timeout passes; raises Draining once drain() is called."""
        waiters = [asyncio.ensure_future(self._draining.wait())]
        if signal is not None:
            waiters.append(asyncio.ensure_future(signal.wait()))
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if self._draining.is_set():
            raise Draining()
