"""Prometheus metrics of a worker: job outcomes, jobs in flight, pipeline stage times, RPC errors.

Each Worker owns a ``WorkerMetrics`` with a registry of its own (tests run several workers in one
process); the worker process serves it over HTTP on ``--metrics-listen`` (``common.metrics_http``).
Job outcomes are counted on the hot path (~10k jobs/s), so they are plain integers read when
Prometheus scrapes, not ``Counter`` objects taking a lock per job. Documented in docs/metrics.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.client import DEFAULT_CALL_TIMEOUT, CoordinatorClient
from crawlfleet.worker.errors import CoordinatorError
from crawlfleet.worker.progress import JobCounts

Outcome = Literal["succeeded", "failed", "skipped", "released", "lost", "cancelled", "fenced"]
OUTCOMES: tuple[Outcome, ...] = ("succeeded", "failed", "skipped", "released", "lost", "cancelled", "fenced")
Stage = Literal["robots", "fetch", "render_wait", "render", "extract", "images", "report"]
STAGES: tuple[Stage, ...] = ("robots", "fetch", "render_wait", "render", "extract", "images", "report")
IMAGE_COUNTS = ("downloaded", "found_stored", "reused", "revalidated", "processed")
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class JobOutcomes:
    """Jobs of one kind by how they ended, since the worker started. Each job counts once."""

    __slots__ = OUTCOMES

    def __init__(self) -> None:
        for outcome in OUTCOMES:
            setattr(self, outcome, 0)

    succeeded: int
    failed: int
    skipped: int
    released: int
    lost: int
    cancelled: int
    fenced: int


class StageTimer:
    """Times pipeline stages into crawlfleet_worker_stage_seconds, one pre-bound child per stage."""

    def __init__(self, histogram: Histogram) -> None:
        self._children = {stage: histogram.labels(stage) for stage in STAGES}

    @classmethod
    def unregistered(cls) -> StageTimer:
        """A timer whose observations go nowhere (pipeline resources built outside a Worker)."""
        return cls(_stage_histogram(registry=None))

    def time(self, stage: Stage) -> AbstractContextManager[Any]:
        """``with timer.time("fetch"): ...`` observes the block's wall time, exceptions included."""
        return self._children[stage].time()

    def observe(self, stage: Stage, seconds: float) -> None:
        self._children[stage].observe(seconds)


class WorkerMetrics:
    """The worker's metrics in a registry of their own.

    ``in_flight()``, ``browser_restarts()`` and ``image_counts()`` are read when Prometheus scrapes.
    """

    def __init__(
        self,
        kinds: Iterable[str],
        *,
        in_flight: Callable[[], int],
        browser_restarts: Callable[[], int],
        image_counts: Callable[[], Mapping[str, int]] = dict,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)  # CPU, memory, file descriptors of this process
        # Every series exists from the start, at 0. A plain dict: lookups are on the hot path.
        self.jobs = {kind: JobOutcomes() for kind in kinds}
        self._in_flight = Gauge(
            "crawlfleet_worker_jobs_in_flight",
            "Jobs held right now: running, or finished with their report pending",
            registry=self.registry,
        )
        self._in_flight.set_function(lambda: float(in_flight()))
        self.stages = StageTimer(_stage_histogram(registry=self.registry))
        self._rpc_errors = Counter(
            "crawlfleet_worker_lease_rpc_errors",
            "Failed JobQueue calls (Lease, Heartbeat, Complete, Fail, ReportRobots, GetRobots, FindStoredImages)"
            " by method and status",
            ["method", "code"],
            registry=self.registry,
        )
        self.registry.register(_ScrapeTimeCollector(self.jobs, browser_restarts, image_counts))

    def abandoned(self, kind: str, why: str) -> None:
        """A lease given up: lost, cancelled by an operator, or self-fenced, told apart by the
        LeaseKeeper's reason (tests/unit/worker/test_metrics.py pins those reasons)."""
        outcomes = self.jobs.get(kind) or self._new_kind(kind)
        if why.startswith("self-fenced"):
            outcomes.fenced += 1
        elif "cancel" in why:
            outcomes.cancelled += 1
        else:
            outcomes.lost += 1

    def complete_settled(self, kind: str, *, completed: bool, count: int = 1) -> None:
        """``count`` successes whose Complete call settled: taken, or not (lease lost, report rejected)."""
        outcomes = self.jobs.get(kind) or self._new_kind(kind)
        if completed:
            outcomes.succeeded += count
        else:
            outcomes.lost += count

    def fail_reported(self, kind: str, *, release: bool, taken: bool, skipped: bool = False) -> None:
        """A Fail call done (for a lease not abandoned meanwhile): failed, skipped (robots.txt
        disallows the URL), released, or lost when the coordinator did not take it (lease gone,
        report rejected or given up)."""
        outcomes = self.jobs.get(kind) or self._new_kind(kind)
        if not taken:
            outcomes.lost += 1
        elif release:
            outcomes.released += 1
        elif skipped:
            outcomes.skipped += 1
        else:
            outcomes.failed += 1

    def totals(self) -> JobCounts:
        """Outcomes since start over all kinds, for the progress log (lost, cancelled and
        self-fenced leases all count as lost there)."""
        total = JobCounts()
        for outcomes in self.jobs.values():
            total.succeeded += outcomes.succeeded
            total.failed += outcomes.failed
            total.skipped += outcomes.skipped
            total.released += outcomes.released
            total.lost += outcomes.lost + outcomes.cancelled + outcomes.fenced
        return total

    def _new_kind(self, kind: str) -> JobOutcomes:
        # Bounded: the coordinator hands out only the kinds the worker asked for.
        outcomes = self.jobs[kind] = JobOutcomes()
        return outcomes

    def rpc_failed(self, method: str, error: CoordinatorError) -> None:
        self._rpc_errors.labels(method, error.code.name).inc()


class _ScrapeTimeCollector(Collector):
    """The counters kept as plain numbers, turned into metrics when Prometheus scrapes."""

    def __init__(
        self,
        jobs: dict[str, JobOutcomes],
        browser_restarts: Callable[[], int],
        image_counts: Callable[[], Mapping[str, int]],
    ) -> None:
        self._jobs = jobs
        self._browser_restarts = browser_restarts
        self._image_counts = image_counts

    def collect(self) -> Iterator[Metric]:
        jobs = CounterMetricFamily(
            "crawlfleet_worker_jobs", "Jobs by kind and how they ended", labels=["kind", "outcome"]
        )
        for kind, outcomes in list(self._jobs.items()):  # a copy: the event loop may add a kind meanwhile
            for outcome in OUTCOMES:
                jobs.add_metric([kind, outcome], getattr(outcomes, outcome))
        yield jobs
        yield CounterMetricFamily(
            "crawlfleet_worker_browser_restarts",
            "Chromium launches after the first: recycled after N pages, or after a crash",
            value=self._browser_restarts(),
        )
        images = CounterMetricFamily(
            "crawlfleet_worker_images",
            "Page images by how the worker got them: downloaded (of which found_stored in the fleet's"
            " index), reused or revalidated from its cache; processed here",
            labels=["how"],
        )
        counts = self._image_counts()
        for how in IMAGE_COUNTS:
            images.add_metric([how], counts.get(how, 0))
        yield images

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily("crawlfleet_worker_jobs", "", labels=["kind", "outcome"])
        yield CounterMetricFamily("crawlfleet_worker_browser_restarts", "")
        yield CounterMetricFamily("crawlfleet_worker_images", "", labels=["how"])


def _stage_histogram(registry: CollectorRegistry | None) -> Histogram:
    return Histogram(
        "crawlfleet_worker_stage_seconds",
        "Time spent in a pipeline stage per job; report is per Complete or Fail call",
        ["stage"],
        buckets=STAGE_BUCKETS,
        registry=registry,
    )


class MeteredClient(CoordinatorClient):
    """The coordinator client, counting failed calls and timing reports (the "report" stage)."""

    def __init__(self, *args: Any, metrics: WorkerMetrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._metrics = metrics

    async def lease(self, max_jobs: int, wait: float) -> pb.LeaseResponse:
        try:
            return await super().lease(max_jobs, wait)
        except CoordinatorError as exc:
            self._metrics.rpc_failed("Lease", exc)
            raise

    async def heartbeat(
        self, leases: Sequence[pb.LeaseRef], deadline: float = DEFAULT_CALL_TIMEOUT
    ) -> pb.HeartbeatResponse:
        try:
            return await super().heartbeat(leases, deadline)
        except CoordinatorError as exc:
            self._metrics.rpc_failed("Heartbeat", exc)
            raise

    async def complete(self, jobs: Sequence[pb.CompletedJob], deadline: float = DEFAULT_CALL_TIMEOUT) -> None:
        started = time.perf_counter()
        try:
            await super().complete(jobs, deadline)
        except CoordinatorError as exc:
            self._metrics.rpc_failed("Complete", exc)
            raise
        finally:
            self._metrics.stages.observe("report", time.perf_counter() - started)

    async def fail(self, request: pb.FailRequest, deadline: float = DEFAULT_CALL_TIMEOUT) -> pb.FailResponse:
        started = time.perf_counter()
        try:
            return await super().fail(request, deadline)
        except CoordinatorError as exc:
            self._metrics.rpc_failed("Fail", exc)
            raise
        finally:
            self._metrics.stages.observe("report", time.perf_counter() - started)

    async def report_robots(
        self, request: pb.ReportRobotsRequest, deadline: float = DEFAULT_CALL_TIMEOUT
    ) -> pb.ReportRobotsResponse:
        try:
            return await super().report_robots(request, deadline)
        except CoordinatorError as exc:
            self._metrics.rpc_failed("ReportRobots", exc)
            raise

    async def get_robots(self, host: str, deadline: float = DEFAULT_CALL_TIMEOUT) -> pb.GetRobotsResponse:
        try:
            return await super().get_robots(host, deadline)
        except CoordinatorError as exc:
            self._metrics.rpc_failed("GetRobots", exc)
            raise

    async def find_stored_images(
        self, sha256s: Sequence[str], deadline: float = DEFAULT_CALL_TIMEOUT
    ) -> Sequence[jobs_pb2.ImageResult]:
        try:
            return await super().find_stored_images(sha256s, deadline)
        except CoordinatorError as exc:
            self._metrics.rpc_failed("FindStoredImages", exc)
            raise
