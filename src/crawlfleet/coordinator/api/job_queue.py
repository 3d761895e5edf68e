"""crawlfleet.v1.JobQueue: Enqueue and WatchJobs for producers; Lease, Heartbeat, Complete, Fail,
ReportRobots and GetRobots for workers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from crawlfleet.common import robots
from crawlfleet.common.robots import RobotsState
from crawlfleet.coordinator.api import convert
from crawlfleet.coordinator.api.result_limits import check_result_size
from crawlfleet.coordinator.api.results import split_result
from crawlfleet.coordinator.api.status import check_bounds, checks_own_bounds, handles_errors, handles_stream_errors
from crawlfleet.coordinator.api.stored_images import image_hashes, stored_image_result
from crawlfleet.coordinator.api.validation import options_differ, validate_enqueue
from crawlfleet.coordinator.api.watch import WatchStreams
from crawlfleet.coordinator.errors import CoordinatorError, Draining, InvalidArgument, WrongResultKind
from crawlfleet.coordinator.metrics import CoordinatorMetrics
from crawlfleet.coordinator.security.principal import caller_name
from crawlfleet.coordinator.settings import CoordinatorSettings
from crawlfleet.coordinator.statistics import JobStatistics
from crawlfleet.coordinator.storage.completion import plain_result
from crawlfleet.coordinator.storage.queue import Queue
from crawlfleet.coordinator.storage.result_rows import ResultRows
from crawlfleet.coordinator.storage.rows import Completion, LatencySample, LeasedJob, LeaseRef
from crawlfleet.coordinator.wakeup import LeaseWakeup
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import job_queue_pb2_grpc, jobs_pb2

log = logging.getLogger(__name__)

MAX_LEASE_BATCH = 1000
# A worker's reported slots (jobs it runs at once); 0 means it did not say. Far above any real
# worker: the bound only keeps nonsense out of the workers table and the dashboard's sums.
MAX_WORKER_SLOTS = 1_000_000
MAX_COMPLETE_BATCH = 1000
MAX_ERROR_MESSAGE = 4096
MAX_RETRY_AFTER_SECONDS = 7 * 24 * 3600
MAX_HTTP_STATUS = 599
# Answer a long-poll this long before the caller's deadline, so the reply still reaches it.
_DEADLINE_MARGIN_SECONDS = 0.5
# Refresh a worker's row at most this often; Lease calls come far more often.
_WORKER_SEEN_INTERVAL_SECONDS = 5.0
# An idle Lease that found a ready host held by another claim tries again after this long.
_HOST_RETRY_SECONDS = 0.01

Ctx = grpc.aio.ServicerContext


def set_host_directives(directives: pb.HostDirectives, row: LeasedJob, host: str) -> None:
    """What politeness asks of the worker of a leased job of `host`."""
    directives.name = host
    directives.fetch_robots = row.fetch_robots
    if row.robots_version is not None:
        directives.robots_version.FromDatetime(row.robots_version)


def lease_response(rows: list[LeasedJob], lease_duration: duration_pb2.Duration) -> pb.LeaseResponse:
    """The answer to a Lease, built in place: each job is added to the response and its stored
    spec parsed straight into it (no message built per job only to be copied)."""
    response = pb.LeaseResponse(lease_duration=lease_duration)
    if not rows:
        return response
    # One claim gives every row the same expiry: convert it once.
    expires = timestamp_pb2.Timestamp()
    expires.FromDatetime(rows[0].lease_expires_at)
    add = response.jobs.add
    for r in rows:
        job = add(id=r.id, kind=r.kind, lease_token=str(r.lease_token), attempt=r.attempt, max_attempts=r.max_attempts)
        job.spec.MergeFromString(r.spec)
        job.lease_expires_at.CopyFrom(expires)
        if r.host is not None:
            set_host_directives(job.host, r, r.host)
    return response


def completion(job: pb.CompletedJob) -> tuple[Completion, ResultRows | None]:
    """A job of a Complete checked, as stored (its result's bytes and rows, None for a result
    with none to write); errors name fields of the job (`job_id`, `result.scrape.title`), and
    those of its result the job too."""
    job_id = convert.positive_id(job.job_id, "job_id")
    result = job.result
    if result.WhichOneof("payload") is None:
        raise InvalidArgument("result", "is required")
    # A token parses as a UUID, or is refused: that keeps it within its bounds (64 characters,
    # no NUL) too.
    token = convert.lease_token(job.lease_token, "lease_token")
    plain = plain_result(result)
    if plain is not None:  # the fast path: nothing to check, split or encode
        return Completion(job_id=job_id, lease_token=token, result=plain), None
    try:
        check_bounds(job)  # what a plain result spares: the walk of the job's every field
        check_result_size(result, "result")
        # Deterministic bytes, so an identical replay compares equal to what is stored.
        stored, rows = split_result(job_id, result, "result")
    except InvalidArgument as exc:  # name the job: the worker completes the batch's others
        raise InvalidArgument(exc.field, exc.message.removeprefix(f"{exc.field}: "), job_id=job_id) from None
    return Completion(job_id=job_id, lease_token=token, result=stored), rows


class Lifecycle:
    """The draining flag the server flips at shutdown; waiting Leases see it and return empty."""

    def __init__(self) -> None:
        self.draining = False


class JobQueueServicer(job_queue_pb2_grpc.JobQueueServicer):
    def __init__(
        self,
        queue: Queue,
        wakeup: LeaseWakeup,
        settings: CoordinatorSettings,
        lifecycle: Lifecycle,
        metrics: CoordinatorMetrics,
        watches: WatchStreams,
        statistics: JobStatistics,
    ) -> None:
        self._queue = queue
        self._metrics = metrics
        self._wakeup = wakeup
        self._settings = settings
        self._lifecycle = lifecycle
        # Per worker: when it was last recorded and the slots recorded then.
        self._worker_seen_at: dict[str, tuple[float, int]] = {}
        self._watches = watches
        self._statistics = statistics

    @handles_errors
    async def Enqueue(self, request: pb.EnqueueRequest, context: Ctx) -> pb.EnqueueResponse:  # type: ignore[type-arg]
        """Add jobs atomically, owned by the caller; duplicates of the caller's live jobs return the live job."""
        owner = caller_name()
        jobs = validate_enqueue(list(request.jobs), self._settings, owner=owner)
        enqueued = await self._queue.enqueue(jobs, owner=owner)
        created = sum(1 for job in enqueued if job.created)
        # No local wake-up: the statement's NOTIFY carries the count of due jobs and reaches this
        # coordinator's waiters like every other's, so each new job wakes one waiter, not two.
        self._metrics.enqueued(created)
        self._statistics.enqueued(created)
        # Built in place (no message per job to copy in); only a duplicate whose live spec is not
        # the one sent has its options compared.
        response = pb.EnqueueResponse()
        add = response.jobs.add
        for new, job in zip(jobs, enqueued, strict=True):
            differs = job.live_spec is not None and options_differ(new.spec, job.live_spec)
            add(id=job.id, created=job.created, existing_spec_differs=differs)
        return response

    @handles_errors
    async def Lease(self, request: pb.LeaseRequest, context: Ctx) -> pb.LeaseResponse:  # type: ignore[type-arg]
        """Long-poll for up to max_jobs jobs."""
        worker = request.worker
        convert.bounded_text(worker.worker_id, "worker.worker_id", limit=200, required=True)
        convert.bounded_text(worker.host, "worker.host", limit=255)
        convert.bounded_text(worker.version, "worker.version", limit=100)
        if not 0 <= worker.slots <= MAX_WORKER_SLOTS:
            raise InvalidArgument("worker.slots", f"must be between 0 and {MAX_WORKER_SLOTS}")
        if not 1 <= request.max_jobs <= MAX_LEASE_BATCH:
            raise InvalidArgument("max_jobs", f"must be between 1 and {MAX_LEASE_BATCH}")
        wait = convert.seconds(request.wait)
        if wait < 0:
            raise InvalidArgument("wait", "must not be negative")
        if self._lifecycle.draining:
            raise Draining()
        await self._record_worker(worker)
        principal = caller_name()  # the leases are bound to it
        wait = min(wait, self._settings.max_lease_wait_seconds)
        remaining = context.time_remaining()
        if remaining is not None:
            wait = max(0.0, min(wait, remaining - _DEADLINE_MARGIN_SECONDS))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        rows: list[LeasedJob] = []
        while True:
            with self._wakeup.ticket() as ticket:  # before the claim: a job arriving meanwhile wakes it
                rows = await self._claim(request, principal)
                if rows:
                    break
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                await ticket.wait(min(timeout, await self._until_next_host_ready()))
            if self._lifecycle.draining:
                break
        self._metrics.leased(len(rows))
        return lease_response(rows, convert.duration(self._settings.lease_seconds))

    async def _until_next_host_ready(self) -> float:
        """How long an idle Lease sleeps before claiming again: until the next host's delay or
        pause ends, but no longer than the re-check interval (new jobs wake it earlier)."""
        ready_at = await self._queue.next_host_ready()
        if ready_at is None:
            return self._settings.recheck_seconds
        until = (ready_at - dt.datetime.now(dt.UTC)).total_seconds()
        if until > 0:  # queued work waits for a host's delay, pause or robots.txt: politeness held it back
            self._metrics.lease_waited_for_hosts()
        # A host that is ready now was held by another claim: try again shortly.
        return min(max(until, _HOST_RETRY_SECONDS), self._settings.recheck_seconds)

    async def _claim(self, request: pb.LeaseRequest, principal: str | None) -> list[LeasedJob]:
        """Claim, and if the caller goes away meanwhile, give the claimed jobs straight back."""
        self._metrics.lease_claims.inc()
        claim = asyncio.ensure_future(
            self._queue.lease(
                worker_id=request.worker.worker_id,
                max_jobs=request.max_jobs,
                kinds=list(request.worker.kinds),
                lease_seconds=self._settings.lease_seconds,
                principal=principal,
            )
        )
        try:
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                for row in await claim:
                    await self._queue.fail(
                        job_id=row.id,
                        lease_token=row.lease_token,
                        error_type="lease_cancelled",
                        error_message="the Lease call was cancelled",
                        retryable=True,
                        retry_after_seconds=None,
                        release=True,
                        principal=principal,
                    )
            raise

    async def _record_worker(self, worker: pb.WorkerInfo) -> None:
        now = time.monotonic()
        seen_at, slots = self._worker_seen_at.get(worker.worker_id, (-1e9, -1))
        # A worker restarted with other slots is recorded at once, not after the interval.
        if now - seen_at < _WORKER_SEEN_INTERVAL_SECONDS and slots == worker.slots:
            return
        await self._queue.worker_seen(
            worker_id=worker.worker_id,
            host=worker.host,
            version=worker.version,
            kinds=list(worker.kinds),
            slots=worker.slots,
        )
        self._worker_seen_at[worker.worker_id] = (now, worker.slots)

    @handles_errors
    async def Heartbeat(self, request: pb.HeartbeatRequest, context: Ctx) -> pb.HeartbeatResponse:  # type: ignore[type-arg]
        """Extend every lease of a worker; answer extended, lost, cancelled or completed per lease.

        A lease whose row is busy (locked by another session) is left out of the answer: it is
        neither extended nor lost, and the worker keeps its current expiry.
        """
        convert.bounded_text(request.worker_id, "worker_id", limit=200, required=True)
        if len(request.leases) > MAX_LEASE_BATCH * 10:
            raise InvalidArgument("leases", "too many leases in one heartbeat")
        leases = [
            LeaseRef(
                job_id=convert.positive_id(ref.job_id, f"leases[{i}].job_id"),
                lease_token=convert.lease_token(ref.lease_token, f"leases[{i}].lease_token"),
            )
            for i, ref in enumerate(request.leases)
        ]
        extended = (
            await self._queue.heartbeat(leases, lease_seconds=self._settings.lease_seconds, principal=caller_name())
            if leases
            else {}
        )
        answers = []
        for lease in leases:
            job_id = lease.job_id
            ext = extended.get(job_id)
            if ext is None:
                answers.append(pb.LeaseState(job_id=job_id, status=pb.LEASE_STATUS_LOST))
            elif ext.state == "cancelled":
                answers.append(pb.LeaseState(job_id=job_id, status=pb.LEASE_STATUS_CANCELLED))
            elif ext.state == "succeeded":
                # Its Complete committed before this heartbeat: settled, not lost.
                answers.append(pb.LeaseState(job_id=job_id, status=pb.LEASE_STATUS_COMPLETED))
            elif ext.lease_expires_at is None:
                continue  # busy: not extended this time, and not lost
            else:
                answers.append(
                    pb.LeaseState(
                        job_id=job_id,
                        status=pb.LEASE_STATUS_EXTENDED,
                        lease_expires_at=convert.timestamp(ext.lease_expires_at),
                    )
                )
        statuses = [answer.status for answer in answers]
        self._metrics.heartbeat(
            extended=statuses.count(pb.LEASE_STATUS_EXTENDED), lost=statuses.count(pb.LEASE_STATUS_LOST)
        )
        return pb.HeartbeatResponse(leases=answers)

    @handles_errors
    @checks_own_bounds  # each job in `completion`, where a plain result needs no walk
    async def Complete(self, request: pb.CompleteRequest, context: Ctx) -> pb.CompleteResponse:  # type: ignore[type-arg]
        """Complete jobs, all or nothing (a stale token aborts with LEASE_LOST)."""
        if not request.jobs:
            raise InvalidArgument("jobs", "at least one job is required")
        if len(request.jobs) > MAX_COMPLETE_BATCH:
            raise InvalidArgument("jobs", f"at most {MAX_COMPLETE_BATCH} jobs per call")
        items: list[Completion] = []
        rows: dict[int, ResultRows] = {}
        feeds: dict[int, jobs_pb2.JobResult] = {}  # results that may feed a crawl
        positions: dict[int, int] = {}  # job id -> its index in the request
        for i, job in enumerate(request.jobs):
            try:
                if job.job_id in positions:
                    raise InvalidArgument("job_id", f"job {job.job_id} appears twice")
                item, part = completion(job)
            except InvalidArgument as exc:  # the field's full name, made only now: this runs per job
                raise exc.within(f"jobs[{i}]") from None
            positions[item.job_id] = i
            items.append(item)
            if part:
                rows[item.job_id] = part
            if job.result.WhichOneof("payload") in ("scrape", "sitemap"):
                feeds[item.job_id] = job.result
        try:
            completed = await self._queue.complete(items, rows, principal=caller_name(), results=feeds)
        except WrongResultKind as exc:
            raise WrongResultKind(exc.job_id, f"jobs[{positions[exc.job_id]}].result") from None
        self._metrics.completed(completed)
        if completed and feeds and self._settings.politeness.adaptive_delay:
            await self._adapt_host_delays(feeds)
        return pb.CompleteResponse()

    async def _adapt_host_delays(self, results: dict[int, jobs_pb2.JobResult]) -> None:
        """Feed the completed pages' response times (of `results`, by job id: the scrape and
        sitemap results of the Complete) to their hosts' adaptive delay. Best effort: the jobs are
        completed already, so a failure here is logged, not answered."""
        samples = [
            LatencySample(job_id=job_id, latency_ms=result.scrape.response_time.ToNanoseconds() / 1e6)
            for job_id, result in results.items()
            if result.scrape.HasField("response_time")
        ]
        if not samples:
            return
        try:
            await self._queue.adapt_host_delays(samples)
        except CoordinatorError as exc:
            log.warning("adaptive delay not updated: %s", exc)

    @handles_errors
    async def Fail(self, request: pb.FailRequest, context: Ctx) -> pb.FailResponse:  # type: ignore[type-arg]
        """Record a failed attempt (retry or dead), or release the job uncharged."""
        job_id = convert.positive_id(request.job_id, "job_id")
        token = convert.lease_token(request.lease_token, "lease_token")
        error_type = convert.bounded_text(request.error_type, "error_type", limit=100) or "error"
        message = request.error_message[:MAX_ERROR_MESSAGE]
        retry_after = None
        if request.HasField("retry_after"):
            retry_after = convert.seconds(request.retry_after)
            if not 0 <= retry_after <= MAX_RETRY_AFTER_SECONDS:
                raise InvalidArgument("retry_after", f"must be between 0 and {MAX_RETRY_AFTER_SECONDS} seconds")
        outcome = await self._queue.fail(
            job_id=job_id,
            lease_token=token,
            error_type=error_type,
            error_message=message,
            retryable=request.retryable,
            retry_after_seconds=retry_after,
            release=request.release,
            principal=caller_name(),
        )
        self._metrics.failed(outcome.state, release=request.release)
        if outcome.state == "queued":
            self._wakeup.notify()
        return pb.FailResponse(
            state=jobs_pb2.JobState.Value(f"JOB_STATE_{outcome.state.upper()}"),
            run_at=convert.timestamp(outcome.run_at),
        )

    @handles_errors
    async def ReportRobots(self, request: pb.ReportRobotsRequest, context: Ctx) -> pb.ReportRobotsResponse:  # type: ignore[type-arg]
        """Store the robots.txt a lease fetched for its host, for the fleet (fenced like Fail)."""
        job_id = convert.positive_id(request.job_id, "job_id")
        token = convert.lease_token(request.lease_token, "lease_token")
        host = convert.host(request.host, "host")
        if request.status_code != 0 and not 100 <= request.status_code <= MAX_HTTP_STATUS:
            raise InvalidArgument("status_code", f"must be an HTTP status (100 to {MAX_HTTP_STATUS}), or 0: no answer")
        error_type = convert.bounded_text(request.error_type, "error_type", limit=100)
        if request.status_code == 0 and not error_type:
            raise InvalidArgument("error_type", "is required when status_code is 0 (no answer came)")
        if len(request.body) > robots.MAX_BODY_BYTES:
            raise InvalidArgument("body", f"is {len(request.body)} bytes; at most {robots.MAX_BODY_BYTES} are read")
        crawl_delay = None
        if request.HasField("crawl_delay"):
            crawl_delay = convert.seconds(request.crawl_delay)
            if crawl_delay < 0:
                raise InvalidArgument("crawl_delay", "must not be negative")
        reported = await self._queue.report_robots(
            job_id=job_id,
            lease_token=token,
            host=host,
            status_code=request.status_code,
            body=request.body,
            error_type=error_type,
            error_message=request.error_message[:MAX_ERROR_MESSAGE],
            crawl_delay_seconds=crawl_delay,
            principal=caller_name(),
        )
        state = RobotsState(reported.state or RobotsState.UNKNOWN)
        # No local wake-up: the statement's NOTIFY wakes this coordinator's waiting Leases too.
        self._metrics.robots_reported(state)
        return pb.ReportRobotsResponse(
            state=state.to_proto(),
            version=convert.timestamp(reported.version),
            expires_at=convert.timestamp(reported.expires_at),
        )

    @handles_errors
    async def GetRobots(self, request: pb.GetRobotsRequest, context: Ctx) -> pb.GetRobotsResponse:  # type: ignore[type-arg]
        """The robots.txt the fleet holds for a host: state, rules, version."""
        stored = await self._queue.robots(convert.host(request.host, "host"))
        if stored is None:
            return pb.GetRobotsResponse(state=RobotsState.UNKNOWN.to_proto())
        return pb.GetRobotsResponse(
            state=RobotsState(stored.state).to_proto(),
            body=stored.body or b"",
            version=convert.timestamp(stored.version),
            expires_at=convert.timestamp(stored.expires_at),
        )

    @handles_errors
    async def FindStoredImages(self, request: pb.FindStoredImagesRequest, context: Ctx) -> pb.FindStoredImagesResponse:  # type: ignore[type-arg]
        """The stored images among the hashes asked for, with their thumbnails' metadata."""
        stored = await self._queue.stored_images(image_hashes(request.sha256s))
        return pb.FindStoredImagesResponse(images=[stored_image_result(image) for image in stored])

    @handles_stream_errors
    async def WatchJobs(self, request: pb.WatchJobsRequest, context: Ctx) -> AsyncIterator[pb.WatchJobsResponse]:  # type: ignore[type-arg]
        """Stream watched jobs as they reach a terminal state: a snapshot first, then each as it finishes."""
        async for response in self._watches.stream(request):
            yield response
