"""Prometheus metrics of a coordinator: RPCs, lease and job transitions, queue depth, hosts, database health.

Each Coordinator owns a registry of its own (several may run in one process, as in tests) and serves
it in the Prometheus text format on ``--metrics-listen``. Servicers and background tasks count
through the ``CoordinatorMetrics`` they are given; RPCs are counted by ``MetricsInterceptor``.
Documented in docs/metrics.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from crawlfleet.common.robots import RobotsState
from crawlfleet.common.states import JobState
from crawlfleet.coordinator.api.requests import Behavior, Deserializer, RawUnaryInterceptor, parse_request
from crawlfleet.coordinator.errors import DatabaseUnavailable
from crawlfleet.coordinator.politeness import OTHER_PAUSE, PAUSE_REASON_CLASSES, pause_reason_class
from crawlfleet.coordinator.storage.admin import AdminQueue
from crawlfleet.coordinator.storage.admin_rows import PurgeCounts
from crawlfleet.coordinator.storage.hosts import HostAdmin

log = logging.getLogger(__name__)

# Lease long-polls for up to the server's cap (20 s by default): the buckets reach past it.
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0)
# A slow depth query (a huge backlog) spaces the refreshes out instead of keeping a connection busy.
_REFRESH_BACKOFF_FACTOR = 10.0


class CoordinatorMetrics:
    """The coordinator's metrics in a registry of their own. Label children are bound once."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=self.registry)  # CPU, memory, file descriptors of this process
        self.rpc_requests = Counter(
            "crawlfleet_rpc_requests", "gRPC calls handled, by method and status code", ["method", "code"], registry=r
        )
        self.rpc_duration = Histogram(
            "crawlfleet_rpc_duration_seconds",
            "Time handling a gRPC call (Lease includes its long-poll wait)",
            ["method"],
            buckets=RPC_BUCKETS,
            registry=r,
        )
        self.jobs = Gauge(
            "crawlfleet_jobs", "Jobs in the queue by state (refreshed periodically)", ["state"], registry=r
        )
        self.oldest_queued_age = Gauge(
            "crawlfleet_jobs_oldest_queued_age_seconds",
            "How long the oldest due queued job has been waiting to be leased (0 when none)",
            registry=r,
        )
        self.leases_granted = Counter("crawlfleet_leases_granted", "Leases handed out by Lease", registry=r)
        self.lease_claims = Counter(
            "crawlfleet_lease_claims", "Claim statements run by Lease calls (first tries and wake-ups)", registry=r
        )
        self.politeness_waits = Counter(
            "crawlfleet_lease_politeness_waits",
            "Lease claims that came back empty while hosts had queued jobs not yet ready "
            "(delay, limit, pause, robots.txt)",
            registry=r,
        )
        self.leases_extended = Counter("crawlfleet_leases_extended", "Leases extended by Heartbeat", registry=r)
        self.leases_lost = Counter(
            "crawlfleet_leases_lost", "Leases a Heartbeat named that were no longer held (answered LOST)", registry=r
        )
        self.leases_expired = Counter(
            "crawlfleet_leases_expired", "Leases that ran out and were ended by the reaper", registry=r
        )
        self.jobs_enqueued = Counter(
            "crawlfleet_jobs_enqueued", "Jobs created by Enqueue (duplicates of live jobs excluded)", registry=r
        )
        self.jobs_completed = Counter(
            "crawlfleet_jobs_completed", "Jobs completed (replayed Completes excluded)", registry=r
        )
        self.jobs_retried = Counter(
            "crawlfleet_jobs_retried", "Failed or expired attempts queued again for another attempt", registry=r
        )
        self.jobs_dead = Counter(
            "crawlfleet_jobs_dead", "Jobs moved to dead (retries exhausted or not retryable)", registry=r
        )
        self.jobs_skipped = Counter(
            "crawlfleet_jobs_skipped", "Jobs skipped: robots.txt disallows their URL (not errors)", registry=r
        )
        self.robots_reports = Counter(
            "crawlfleet_robots_reports",
            "robots.txt fetches reported by workers, by what they made of the host: rules, allow_all, unreachable",
            ["state"],
            registry=r,
        )
        self.jobs_released = Counter(
            "crawlfleet_jobs_released", "Jobs given back by workers without charging an attempt", registry=r
        )
        self.requests_refused_for_bytes = Counter(
            "crawlfleet_requests_refused_for_bytes",
            "Large requests refused because --max-request-bytes-in-flight was reached",
            registry=r,
        )
        self.hosts_paused = Gauge(
            "crawlfleet_hosts_paused",
            "Hosts paused now, by what paused them (refreshed periodically)",
            ["reason"],
            registry=r,
        )
        self.hosts_saturated = Gauge(
            "crawlfleet_hosts_saturated",
            "Hosts with queued jobs that were at their concurrency limit when last claimed (refreshed periodically)",
            registry=r,
        )
        self.hosts_queued = Gauge(
            "crawlfleet_hosts_with_queued_jobs", "Hosts with queued jobs (refreshed periodically)", registry=r
        )
        self.jobs_removed = Counter(
            "crawlfleet_jobs_removed",
            "Finished jobs deleted with their attempts and pages, by state and by what removed them"
            " (retention, purge: a PurgeJobs call)",
            ["state", "by"],
            registry=r,
        )
        self.images_removed = Counter(
            "crawlfleet_images_removed",
            "Images (with their thumbnails) deleted once no page referred to them, by what removed the pages",
            ["by"],
            registry=r,
        )
        self.watch_streams = Gauge("crawlfleet_watch_streams", "Open WatchJobs streams", registry=r)
        self.database_up = Gauge(
            "crawlfleet_database_up", "1 while the health probe reaches PostgreSQL, else 0", registry=r
        )
        self._states = {state: self.jobs.labels(state.value) for state in JobState}
        for child in self._states.values():
            child.set(0)
        # Bounded labels: the known reason classes and "other", never a host.
        self._pauses = {reason: self.hosts_paused.labels(reason) for reason in (*PAUSE_REASON_CLASSES, OTHER_PAUSE)}
        for child in self._pauses.values():
            child.set(0)

    def request_refused(self) -> None:
        self.requests_refused_for_bytes.inc()

    def enqueued(self, created: int) -> None:
        if created:
            self.jobs_enqueued.inc(created)

    def leased(self, count: int) -> None:
        if count:
            self.leases_granted.inc(count)

    def heartbeat(self, *, extended: int, lost: int) -> None:
        if extended:
            self.leases_extended.inc(extended)
        if lost:
            self.leases_lost.inc(lost)

    def completed(self, count: int) -> None:
        if count:
            self.jobs_completed.inc(count)

    def failed(self, state: str, *, release: bool) -> None:
        """One Fail call's outcome: the job's state afterwards."""
        if release:
            self.jobs_released.inc()
        elif state == JobState.QUEUED:
            self.jobs_retried.inc()
        elif state == JobState.DEAD:
            self.jobs_dead.inc()
        elif state == JobState.SKIPPED:
            self.jobs_skipped.inc()

    def removed(self, purged: PurgeCounts, *, by: str) -> None:
        """One batch of finished jobs deleted (by retention or a PurgeJobs call)."""
        for state, count in purged.by_state.items():
            self.jobs_removed.labels(state, by).inc(count)
        if purged.deleted_images:
            self.images_removed.labels(by).inc(purged.deleted_images)

    def robots_reported(self, state: RobotsState) -> None:
        self.robots_reports.labels(state.value).inc()

    def reaped(self, states: Iterable[str]) -> None:
        """Expired leases the reaper ended, by the job's state afterwards."""
        for state in states:
            self.leases_expired.inc()
            if state == JobState.QUEUED:
                self.jobs_retried.inc()
            elif state == JobState.DEAD:
                self.jobs_dead.inc()

    def observing_database(self, on_change: Callable[[bool], Awaitable[None]]) -> Callable[[bool], Awaitable[None]]:
        """Wraps a database health callback so that it also sets crawlfleet_database_up."""

        async def observed(healthy: bool) -> None:
            self.database_up.set(1 if healthy else 0)
            await on_change(healthy)

        return observed

    async def refresh_gauges_forever(self, admin: AdminQueue, hosts: HostAdmin, interval: float) -> None:
        """Refresh the queue and host gauges every interval (less often when the queries are slow)."""
        while True:
            started = time.monotonic()
            try:
                await self.refresh_jobs(admin)
                await self.refresh_hosts(hosts)
            except DatabaseUnavailable as exc:
                # The gauges keep their last values; crawlfleet_database_up says they are stale.
                log.debug("queue gauges not refreshed: %s", exc.message)
            took = time.monotonic() - started
            await asyncio.sleep(max(interval, took * _REFRESH_BACKOFF_FACTOR))

    async def refresh_jobs(self, admin: AdminQueue) -> None:
        """Job counts from the folded count table and the oldest due job from one index probe:
        cheap at any depth (no count of the due backlog)."""
        counts = await admin.counts_by_state()
        for state, child in self._states.items():
            child.set(counts.get(state, 0))
        due = await admin.oldest_due()
        oldest = due.oldest_due_run_at
        # Both times come from the database clock: no skew with this host's.
        self.oldest_queued_age.set(0.0 if oldest is None else max(0.0, (due.now - oldest).total_seconds()))

    async def refresh_hosts(self, hosts: HostAdmin) -> None:
        """Hosts paused by reason class, saturated, and with queued jobs: walks of partial indexes."""
        paused = dict.fromkeys(self._pauses, 0)
        for reason, count in (await hosts.paused_by_reason()).items():
            paused[pause_reason_class(reason)] += count
        for reason, child in self._pauses.items():
            child.set(paused[reason])
        gauges = await hosts.gauges()
        self.hosts_queued.set(gauges.queued)
        self.hosts_saturated.set(gauges.saturated)

    def lease_waited_for_hosts(self) -> None:
        """An empty claim while hosts had queued jobs that were not ready yet."""
        self.politeness_waits.inc()


class MetricsInterceptor(RawUnaryInterceptor):
    """Counts unary calls by method and final status code and times them.

    The status is what the handler left on the context: OK, the code of an abort (every
    CoordinatorError aborts), UNKNOWN for an unexpected exception, CANCELLED or DEADLINE_EXCEEDED
    when the call went away. Streaming methods (health Watch, reflection) pass through uncounted.

    The request is parsed here rather than by gRPC, so that bytes that are not a valid message
    are answered INVALID_ARGUMENT (and counted) instead of UNKNOWN with a traceback in the log.
    """

    def __init__(self, metrics: CoordinatorMetrics) -> None:
        super().__init__()
        self._metrics = metrics
        self._counters: dict[tuple[str, str], Counter] = {}

    def wrap(self, method: str, behavior: Behavior, deserializer: Deserializer | None) -> Behavior:
        duration = self._metrics.rpc_duration.labels(method)

        async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            code: grpc.StatusCode | None = grpc.StatusCode.UNKNOWN
            try:
                if deserializer is not None:
                    request = await parse_request(method, deserializer, request, context)
                response = await behavior(request, context)
                code = context.code()
                return response
            except grpc.aio.AbortError:
                code = context.code()
                raise
            except asyncio.CancelledError:
                remaining = context.time_remaining()
                expired = remaining is not None and remaining <= 0
                code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
                raise
            finally:
                duration.observe(time.perf_counter() - started)
                self._count(method, (code or grpc.StatusCode.OK).name)

        return observed

    def _count(self, method: str, code: str) -> None:
        counter = self._counters.get((method, code))
        if counter is None:
            counter = self._counters[method, code] = self._metrics.rpc_requests.labels(method, code)
        counter.inc()
