"""The worker: slots before leases, a lease loop, heartbeats, batched reports, two-phase shutdown.

    async with Worker(settings) as worker:
        await worker.run()          # returns once shutdown() has finished

A crash of a side task (lease loop, heartbeats, batcher) shuts the worker down and makes ``run``
raise ``WorkerCrashed``, so the process exits non-zero instead of limping on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Self

from crawlfleet.common.robots import skips_job
from crawlfleet.common.rpc_errors import REASON_IMAGE_NOT_STORED
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.backoff import Backoff
from crawlfleet.worker.client import CoordinatorClient
from crawlfleet.worker.eager import eager_runs
from crawlfleet.worker.errors import CoordinatorError, CoordinatorUnavailable, JobError, WorkerCrashed
from crawlfleet.worker.handlers import Handler, JobContext, handlers_for
from crawlfleet.worker.leases import HeldLease, LeaseDeadlines, LeaseKeeper
from crawlfleet.worker.metrics import MeteredClient, WorkerMetrics
from crawlfleet.worker.pipeline.resources import PipelineResources
from crawlfleet.worker.progress import ProgressLog
from crawlfleet.worker.reporting import (
    CompleteBatcher,
    Settled,
    fail_request,
    image_hashes_of,
    image_not_stored,
    internal_failure,
    rejected_result,
    release_request,
    report_fail,
)
from crawlfleet.worker.robots import RobotsGate
from crawlfleet.worker.settings import WorkerSettings
from crawlfleet.worker.slots import Backlog
from crawlfleet.worker.version import worker_info

if TYPE_CHECKING:
    from crawlfleet.worker.pipeline.image_index import FleetImageIndex

log = logging.getLogger(__name__)

MAX_LEASE_BATCH = 1000  # the coordinator's bound on max_jobs
# Finished jobs whose Complete is not yet acknowledged, per worker, at least this many: at the
# bound the lease loop leases nothing until the backlog drains, so leasing slows down instead of
# piling up results (and leases to heartbeat) without limit while the coordinator falls behind.
MIN_UNREPORTED_BOUND = 1000
FALLBACK_LEASE_DURATION = 30.0  # only if a coordinator ever omits lease_duration


class Worker:
    """Leases jobs for ``settings.kinds`` and runs at most ``settings.slots`` of them at once.

    ``client`` and ``handlers`` may be given for tests; by default the client connects to
    ``settings.coordinator`` and the handlers are those of ``settings.kinds``.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        client: CoordinatorClient | None = None,
        handlers: Mapping[str, Handler] | None = None,
    ) -> None:
        self._settings = settings
        self._handlers = dict(handlers) if handlers is not None else handlers_for(settings.kinds)
        self._eager = eager_runs(self._handlers)
        self._client = client
        self._resources: PipelineResources | None = None
        self._robots: RobotsGate | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._backlog = Backlog(settings.slots, unreported_bound(settings))
        self._keeper: LeaseKeeper | None = None
        self._batcher: CompleteBatcher | None = None
        self.metrics = WorkerMetrics(
            self._handlers,
            in_flight=lambda: self.held_leases,
            browser_restarts=self._browser_restarts,
            image_counts=self._image_counts,
        )
        self._progress = ProgressLog(lambda: self.held_leases, self.metrics.totals)
        self._side_tasks: dict[str, asyncio.Task[None]] = {}
        self._job_tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._shutdown_task: asyncio.Task[None] | None = None
        self._finished = asyncio.Event()
        self._crash: BaseException | None = None

    @property
    def settings(self) -> WorkerSettings:
        """The settings this worker runs with."""
        return self._settings

    @property
    def held_leases(self) -> int:
        """Leases held right now (running jobs and jobs whose report is pending)."""
        return len(self._keeper) if self._keeper is not None else 0

    async def __aenter__(self) -> Self:
        if self._client is None:
            self._client = MeteredClient(
                self._settings.coordinator,
                worker_info(self._settings),
                security=self._settings.security,
                metrics=self.metrics,
            )
        self._resources = PipelineResources(
            self._settings.scrape,
            slots=self._settings.slots,
            stages=self.metrics.stages,
            find_stored_images=self._client.find_stored_images,
        )
        self._robots = RobotsGate(self._client, user_agent=self._settings.scrape.user_agent)
        self._executor = ThreadPoolExecutor(self._settings.slots, thread_name_prefix="crawlfleet-job")
        self._keeper = LeaseKeeper(
            self._client, fraction=self._settings.heartbeat_fraction, on_abandon=self._on_abandon
        )
        self._batcher = CompleteBatcher(
            self._client,
            max_batch=self._settings.complete_batch_max,
            flush_interval=self._settings.complete_flush_interval,
            on_settled=self._on_complete_settled,
            on_completed=self._on_batch_completed,
            on_rejected=self._on_complete_rejected,
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()

    async def run(self) -> None:
        """Leases and runs jobs until ``shutdown()`` completes; raises ``WorkerCrashed`` if a side
        task died."""
        if self._keeper is None or self._batcher is None:
            raise RuntimeError("use Worker as an async context manager: async with Worker(...) as w")
        if self._side_tasks:
            raise RuntimeError("Worker.run() was already called")
        if not self._stopping:
            s = self._settings
            log.info(
                "worker %s started: coordinator %s, %d slots, kinds %s, egress %s",
                s.worker_id,
                s.coordinator,
                s.slots,
                ",".join(s.kinds),
                egress_summary(s),
            )
            for name, coro in (
                ("heartbeats", self._keeper.run()),
                ("complete-batcher", self._batcher.run()),
                ("lease-loop", self._lease_loop()),
                ("progress-log", self._progress.run()),
            ):
                task = asyncio.create_task(coro, name=name)
                task.add_done_callback(self._on_side_task_done)
                self._side_tasks[name] = task
        await self._finished.wait()
        if self._shutdown_task is not None:
            await self._shutdown_task  # surfaces a failed shutdown
        if self._crash is not None:
            raise WorkerCrashed(f"a side task of the worker died: {self._crash!r}") from self._crash

    async def shutdown(self) -> None:
        """Stops leasing at once, gives running jobs ``shutdown_grace`` to finish, then cancels and
        releases the rest, flushes reports, stops heartbeats and closes connections. Safe to call
        twice or concurrently; every call returns when the shutdown is complete."""
        await asyncio.shield(self._begin_shutdown(self._settings.shutdown_grace))

    def _begin_shutdown(self, grace: float) -> asyncio.Task[None]:
        if self._shutdown_task is None:
            self._stopping = True
            self._shutdown_task = asyncio.create_task(self._shutdown(grace), name="worker-shutdown")
        return self._shutdown_task

    async def _shutdown(self, grace: float) -> None:
        try:
            await self._stop_jobs(grace)
        finally:
            await self._close()
            self._finished.set()

    async def _stop_jobs(self, grace: float) -> None:
        # Phase 1: no new work. Cancelling the lease loop cancels its in-flight long-poll; jobs the
        # coordinator leased in that very instant are never seen here and expire there.
        lease_loop = self._side_tasks.get("lease-loop")
        if lease_loop is not None:
            lease_loop.cancel()
            await asyncio.gather(lease_loop, return_exceptions=True)
        if self._keeper is None or self._batcher is None:
            return
        # Phase 2: running jobs get the grace period; heartbeats keep their leases alive meanwhile.
        running = {lease.task for lease in self._keeper.leases() if lease.running and lease.task}
        if running and grace > 0:
            log.info("shutting down: waiting up to %.1fs for %d running job(s)", grace, len(running))
            await asyncio.wait(running, timeout=grace)
        # Phase 3: cancel what still runs and give those jobs back without charging an attempt.
        unfinished = [lease for lease in self._keeper.leases() if lease.running]
        for lease in unfinished:
            if lease.task is not None:
                lease.task.cancel()
        await asyncio.gather(*(lease.task for lease in unfinished if lease.task), return_exceptions=True)
        if unfinished:
            log.info("shutting down: releasing %d unfinished job(s)", len(unfinished))
        self._batcher.close()
        reports = [asyncio.create_task(self._release(lease)) for lease in unfinished if not lease.abandoned]
        reports += list(self._job_tasks)  # jobs still reporting a failure
        batcher = self._side_tasks.get("complete-batcher")
        if batcher is not None:
            reports.append(batcher)
        if reports:
            _, late = await asyncio.wait(reports, timeout=self._settings.shutdown_report_timeout)
            for task in late:
                task.cancel()
            if late:
                log.warning("shutting down: gave up on %d report(s) after the timeout", len(late))
                await asyncio.gather(*late, return_exceptions=True)

    async def _close(self) -> None:
        if self._keeper is not None:
            self._keeper.stop()
        for task in self._side_tasks.values():
            task.cancel()
        await asyncio.gather(*self._side_tasks.values(), return_exceptions=True)
        if self._resources is not None:
            await self._resources.aclose()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            await self._client.close()
        self._progress.log_summary()
        log.info("worker %s stopped", self._settings.worker_id)

    def _on_side_task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None and self._stopping:
            return  # the batcher returns once drained at shutdown
        if self._crash is None:
            self._crash = exc or RuntimeError(f"{task.get_name()} returned unexpectedly")
        log.critical("%s died, shutting the worker down", task.get_name(), exc_info=exc)
        # Heartbeats or reports may be gone: no grace, release what can be released.
        self._begin_shutdown(0.0)

    async def _lease_loop(self) -> None:
        backoff = Backoff()
        failing = False
        client = self._client_or_fail()
        while not self._stopping:
            wanted = await self._backlog.wait_for_room(MAX_LEASE_BATCH)  # room before leases
            try:
                response = await client.lease(wanted, self._settings.lease_wait)
            except CoordinatorError as exc:
                delay = backoff.next_delay()
                level = logging.WARNING if isinstance(exc, CoordinatorUnavailable) else logging.ERROR
                log.log(level, "lease failed, retrying in %.2fs: %s", delay, exc)
                failing = True
                await asyncio.sleep(delay)
                continue
            if failing:
                log.info("coordinator reachable again")
                failing = False
            backoff.reset()
            leased = min(len(response.jobs), wanted)
            if len(response.jobs) > wanted:
                log.error("coordinator sent %d jobs for %d slots; the rest will expire", len(response.jobs), wanted)
            self._start_jobs(response, leased)

    def _start_jobs(self, response: pb.LeaseResponse, count: int) -> None:
        # Hot path: runs once per job, so no per-job logging, callbacks or context dicts here.
        assert self._keeper is not None and self._batcher is not None
        keeper, job_tasks, loop = self._keeper, self._job_tasks, asyncio.get_running_loop()
        eager, batcher = self._eager, self._batcher
        finished_now = 0
        now, wall_now = time.monotonic(), time.time()
        lease_duration = response.lease_duration.ToNanoseconds() / 1e9 or FALLBACK_LEASE_DURATION
        # The coordinator starts the term just before answering: the receipt time is close.
        deadlines = LeaseDeadlines(start=now, lease_duration=lease_duration, now=now, wall_now=wall_now)
        leases = [
            HeldLease(job=job, lease_duration=lease_duration, deadline=deadlines.of(job), logger=log)
            for job in response.jobs[:count]
        ]
        keeper.add_many(leases)
        for lease in leases:
            job = lease.job
            run = eager.get(job.kind)
            if run is not None:
                completed = pb.CompletedJob(job_id=job.id, lease_token=job.lease_token)
                if run(job, completed.result):
                    lease.running = False
                    lease.holds_report_slot = True
                    batcher.submit(completed)
                    finished_now += 1
                    continue
            lease.task = loop.create_task(self._run_job(lease), name=f"job-{job.id}")
            job_tasks.add(lease.task)
        self._backlog.started(count - finished_now)
        self._backlog.awaiting_report(finished_now)

    async def _run_job(self, lease: HeldLease) -> None:
        # Cleanup here rather than in a done-callback: one callback less to schedule per job.
        try:
            await self._run_and_report(lease)
        except Exception:  # a bug here must not go unnoticed in a task nobody awaits
            log.exception("job task job-%d failed", lease.job_id)
        finally:
            if lease.task is not None:
                self._job_tasks.discard(lease.task)

    async def _run_and_report(self, lease: HeldLease) -> None:
        job = lease.job
        debug = log.isEnabledFor(logging.DEBUG)
        if debug:
            lease.log.debug("job started (attempt %d of %d)", job.attempt, job.max_attempts)
        started = time.monotonic()
        outcome: jobs_pb2.JobResult | pb.FailRequest | None = None
        try:
            outcome = await self._execute(lease)
        finally:
            lease.running = False
            # Counted until its Complete settles: the lease loop's backpressure (see slots.py).
            lease.holds_report_slot = isinstance(outcome, jobs_pb2.JobResult) and not lease.abandoned
            self._backlog.finished(unreported=lease.holds_report_slot)
        if lease.abandoned or outcome is None:
            return  # lost or cancelled while finishing: report nothing
        took = time.monotonic() - started
        if isinstance(outcome, jobs_pb2.JobResult):
            if debug:
                lease.log.debug("job succeeded in %.3fs", took)
            assert self._batcher is not None
            if (index := self._image_index()) is not None:
                index.sending(job.id, outcome)
            self._batcher.submit(pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=outcome))
        elif skips_job(outcome.error_type, retryable=outcome.retryable, release=outcome.release):
            # Not a failure: the site asked not to be fetched there. One line, not a warning.
            lease.log.info("job skipped in %.3fs: %s", took, outcome.error_message)
            await self._report_fail(lease, outcome)
        else:
            lease.log.warning(
                "job failed in %.3fs: %s: %s (retryable=%s)",
                took,
                outcome.error_type,
                outcome.error_message,
                outcome.retryable,
            )
            await self._report_fail(lease, outcome)

    async def _execute(self, lease: HeldLease) -> jobs_pb2.JobResult | pb.FailRequest:
        job = lease.job
        handler = self._handlers.get(job.kind)
        try:
            if handler is None:
                raise JobError(f"no handler for kind {job.kind!r}", error_type="unsupported_kind", retryable=True)
            assert self._resources is not None and self._executor is not None
            ctx = JobContext(
                settings=self._settings,
                resources=self._resources,
                log=lease.log,
                executor=self._executor,
                robots=self._robots,
            )
            return await handler(job, ctx)
        except JobError as exc:
            return fail_request(job, exc)
        except Exception as exc:  # a bug in a handler must fail the job, not the worker
            lease.log.exception("handler raised unexpectedly")
            return internal_failure(job, exc)

    async def _release(self, lease: HeldLease) -> None:
        await self._report_fail(lease, release_request(lease.job))

    async def _report_fail(self, lease: HeldLease, request: pb.FailRequest) -> None:
        try:
            taken = await report_fail(self._client_or_fail(), lease, request)
        finally:
            self._forget(lease)
        if taken or not lease.abandoned:  # an abandoned lease was counted when it was abandoned
            skipped = skips_job(request.error_type, retryable=request.retryable, release=request.release)
            self.metrics.fail_reported(lease.job.kind, release=request.release, taken=taken, skipped=skipped)

    def _forget(self, lease: HeldLease) -> None:
        if self._keeper is not None and not lease.abandoned:
            self._keeper.remove(lease.job_id)

    def _on_complete_settled(self, job_id: int, outcome: Settled) -> None:
        if outcome == "completed":  # the batcher hands these to _on_batch_completed, a batch at once
            self._on_batch_completed([job_id])
            return
        lease = self._keeper.remove(job_id) if self._keeper is not None else None
        if (index := self._image_index()) is not None:
            index.settled(job_id, completed=False)
        if lease is not None:
            self._free_report_slot(lease)
            self.metrics.complete_settled(lease.job.kind, completed=False)

    def _on_batch_completed(self, job_ids: list[int]) -> None:
        # Once per acknowledged Complete: the per-job part is a removal and a count.
        assert self._keeper is not None
        remove, index = self._keeper.remove, self._image_index()
        freed = 0
        by_kind: dict[str, int] = {}
        for job_id in job_ids:
            lease = remove(job_id)
            if index is not None:
                index.settled(job_id, completed=True)
            if lease is None:
                continue
            if lease.holds_report_slot:
                lease.holds_report_slot = False
                freed += 1
            kind = lease.job.kind
            by_kind[kind] = by_kind.get(kind, 0) + 1
        if freed:
            self._backlog.reported(freed)
        for kind, count in by_kind.items():
            self.metrics.complete_settled(kind, completed=True, count=count)

    def _on_complete_rejected(self, job_id: int, error: CoordinatorError) -> None:
        if (index := self._image_index()) is not None:
            index.settled(job_id, completed=False)
        lease = self._keeper.get(job_id) if self._keeper is not None else None
        if lease is None:
            return
        self._free_report_slot(lease)
        if error.reason == REASON_IMAGE_NOT_STORED and self._resources is not None:
            # Purged since the coordinator said it held them: run the job again, sending them.
            missing = image_hashes_of(error)
            self._resources.image_index.forget(missing)
            self._resources.image_source.forget(missing)
            report = image_not_stored(lease.job, error)
        else:
            report = rejected_result(lease.job, error)
        task = asyncio.get_running_loop().create_task(self._report_fail(lease, report), name=f"reject-{job_id}")
        self._job_tasks.add(task)
        task.add_done_callback(self._job_tasks.discard)

    def _image_index(self) -> FleetImageIndex | None:
        """The fleet image index if a job has used it: asking for it otherwise would make it, and
        import the image stage, in a worker whose jobs never see an image."""
        return self._resources.image_index_if_made if self._resources is not None else None

    def _free_report_slot(self, lease: HeldLease) -> None:
        if lease.holds_report_slot:
            lease.holds_report_slot = False
            self._backlog.reported()

    def _on_abandon(self, lease: HeldLease, why: str) -> None:
        self.metrics.abandoned(lease.job.kind, why)
        if (index := self._image_index()) is not None:
            index.settled(lease.job_id, completed=False)
        self._free_report_slot(lease)
        if self._batcher is not None:
            self._batcher.discard(lease.job_id)
        if lease.task is not None and not lease.task.done():
            lease.task.cancel()

    def _browser_restarts(self) -> int:
        return self._resources.browser_restarts if self._resources is not None else 0

    def _image_counts(self) -> dict[str, int]:
        return self._resources.image_counts if self._resources is not None else {}

    def _client_or_fail(self) -> CoordinatorClient:
        if self._client is None:
            raise RuntimeError("Worker is not entered")
        return self._client


def unreported_bound(settings: WorkerSettings) -> int:
    """How many finished jobs may wait for their Complete: enough for full batches in flight."""
    return max(MIN_UNREPORTED_BOUND, settings.slots, 10 * settings.complete_batch_max)


def egress_summary(settings: WorkerSettings) -> str:
    """What the egress guard lets fetches reach beyond public addresses, for the start-up line."""
    allowed = [*settings.scrape.egress_allow, *(["loopback"] if settings.scrape.allow_loopback else [])]
    return "public addresses" + (f" and {', '.join(allowed)}" if allowed else " only")
