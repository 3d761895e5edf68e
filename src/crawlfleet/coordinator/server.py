"""Builds and runs a coordinator: database, migrations, gRPC services, background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from crawlfleet.common.metrics_http import MetricsEndpoint
from crawlfleet.coordinator.api import reflection
from crawlfleet.coordinator.api.admin import AdminServicer
from crawlfleet.coordinator.api.crawls import CrawlsServicer
from crawlfleet.coordinator.api.job_queue import JobQueueServicer, Lifecycle
from crawlfleet.coordinator.api.watch import WatchStreams
from crawlfleet.coordinator.background import (
    COUNT_FOLD_SECONDS,
    finish_crawls_forever,
    fold_counts_forever,
    probe_database_forever,
    reap_forever,
)
from crawlfleet.coordinator.inflight import RequestBudget, RequestBytesInterceptor
from crawlfleet.coordinator.metrics import CoordinatorMetrics, MetricsInterceptor
from crawlfleet.coordinator.retention import remove_expired_forever
from crawlfleet.coordinator.security import settings as security
from crawlfleet.coordinator.settings import DEFAULT_METRICS_LISTEN, CoordinatorSettings
from crawlfleet.coordinator.statistics import JobStatistics
from crawlfleet.coordinator.storage import database
from crawlfleet.coordinator.storage.admin import AdminQueue
from crawlfleet.coordinator.storage.crawls import CrawlStore
from crawlfleet.coordinator.storage.hosts import HostAdmin
from crawlfleet.coordinator.storage.migrate import migrate
from crawlfleet.coordinator.storage.queue import NOTIFY_CHANNEL, Queue
from crawlfleet.coordinator.storage.watch import FINISHED_CHANNEL, WatcherRegistration, WatchQueries
from crawlfleet.coordinator.wakeup import LeaseWakeup, NotifyListener, Wakeup
from crawlfleet.v1 import admin_pb2, admin_pb2_grpc, crawls_pb2, crawls_pb2_grpc, job_queue_pb2, job_queue_pb2_grpc

log = logging.getLogger(__name__)
SERVICE_NAMES = (
    job_queue_pb2.DESCRIPTOR.services_by_name["JobQueue"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,
    crawls_pb2.DESCRIPTOR.services_by_name["Crawls"].full_name,
)
HEALTH_PROBE_SECONDS = 1.0


class ListenFailed(Exception):
    """The coordinator cannot bind its listen address: it cannot start."""


class Coordinator:
    """One coordinator process. `await start()`, then `await stop()` (safe to call twice)."""

    def __init__(self, settings: CoordinatorSettings) -> None:
        self.settings = settings
        self.port: int | None = None
        self.metrics = CoordinatorMetrics()
        self.metrics_port: int | None = None  # None: metrics are off (or the default address was taken)
        self._metrics_endpoint: MetricsEndpoint | None = None
        self.dsn: str | None = None
        self._pool: asyncpg.Pool | None = None
        self._server: grpc.aio.Server | None = None
        self._listener: NotifyListener | None = None
        self._watches: WatchStreams | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._statistics: JobStatistics | None = None
        self._health = health.aio.HealthServicer()
        self._lifecycle = Lifecycle()
        self._stopped = asyncio.Event()
        self._stopping = False
        self.request_bytes = RequestBytesInterceptor(
            RequestBudget(settings.limits.max_request_bytes_in_flight), self.metrics.request_refused
        )

    async def start(self) -> None:
        settings = self.settings
        guard = security.prepare(settings.security, settings.listen)  # before anything starts: fail fast
        self.dsn = await database.resolve_dsn(settings)
        self._pool = await database.create_pool(
            self.dsn,
            size=settings.pool_size,
            lock_timeout_seconds=settings.lock_timeout_seconds,
            statement_timeout_seconds=settings.statement_timeout_seconds,
        )
        if settings.migrate_on_start:
            async with self._pool.acquire() as conn:
                await migrate(conn)
        crawls = CrawlStore(self._pool)
        queue = Queue(self._pool, settings.politeness, crawls)
        self._statistics = JobStatistics(queue)
        wakeup = LeaseWakeup()  # new jobs: wakes as many waiting Lease calls as there are jobs
        finished = Wakeup()  # jobs reached a terminal state: wakes WatchJobs streams
        self._listener = NotifyListener(self.dsn, {NOTIFY_CHANNEL: wakeup, FINISHED_CHANNEL: finished})
        self._listener.start()
        watch_queries = WatchQueries(self._pool)
        self._watches = WatchStreams(
            watch_queries,
            WatcherRegistration(watch_queries),
            finished,
            self.metrics,
            max_streams=settings.max_watch_streams,
            recheck_seconds=settings.watch_recheck_seconds,
        )

        options = [*settings.limits.grpc_options(), ("grpc.so_reuseport", 0)]
        # Metrics first: calls the security interceptors refuse are counted too.
        # The request budget last: calls refused by authentication never charge it.
        interceptors = [MetricsInterceptor(self.metrics), *guard.interceptors, self.request_bytes]
        server = grpc.aio.server(options=options, interceptors=interceptors)
        job_queue_pb2_grpc.add_JobQueueServicer_to_server(
            JobQueueServicer(queue, wakeup, settings, self._lifecycle, self.metrics, self._watches, self._statistics),
            server,
        )
        admin = AdminQueue(self._pool)
        hosts = HostAdmin(self._pool)
        admin_servicer = AdminServicer(
            admin,
            hosts,
            wakeup,
            reap_interval_seconds=settings.reap_interval_seconds,
            politeness=settings.politeness,
            metrics=self.metrics,
        )
        admin_pb2_grpc.add_AdminServicer_to_server(admin_servicer, server)
        crawls_pb2_grpc.add_CrawlsServicer_to_server(CrawlsServicer(crawls, wakeup, settings, self._lifecycle), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable((*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server)
        await self._set_serving(True)  # the pool just connected; the probe takes over from here
        try:
            self.port = guard.add_port(server, settings.listen)
        except RuntimeError:  # gRPC says only "Failed to bind"; the reason went to its own log
            self.port = 0
        if self.port == 0:
            raise ListenFailed(
                f"cannot listen on {settings.listen}: the port is taken or the address is not this host's (--listen)"
            )
        await server.start()
        self._server = server
        self._metrics_endpoint = MetricsEndpoint.start(
            settings.metrics_listen,
            self.metrics.registry,
            best_effort=settings.metrics_listen == DEFAULT_METRICS_LISTEN,
        )
        self.metrics_port = self._metrics_endpoint.port if self._metrics_endpoint else None
        self._tasks = [
            asyncio.create_task(
                reap_forever(queue, wakeup, settings.reap_interval_seconds, self.metrics), name="reaper"
            ),
            asyncio.create_task(
                self.metrics.refresh_gauges_forever(admin, hosts, settings.metrics_refresh_seconds),
                name="queue-gauges",
            ),
            asyncio.create_task(fold_counts_forever(admin, COUNT_FOLD_SECONDS), name="count-folder"),
            asyncio.create_task(finish_crawls_forever(crawls, settings.reap_interval_seconds), name="crawl-finisher"),
            asyncio.create_task(
                probe_database_forever(queue, HEALTH_PROBE_SECONDS, self.metrics.observing_database(self._set_serving)),
                name="db-probe",
            ),
        ]
        if settings.retention.enabled:
            self._tasks.append(
                asyncio.create_task(remove_expired_forever(admin, settings.retention, self.metrics), name="retention")
            )
        self._wakeup = wakeup
        host = settings.listen.rsplit(":", 1)[0]
        log.info("crawlfleet-coordinator listening on %s:%d", host, self.port)

    async def _set_serving(self, serving: bool) -> None:
        if self._lifecycle.draining:
            return
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *SERVICE_NAMES):
            await self._health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """Drain: NOT_SERVING, waiting Leases return empty, watch streams end UNAVAILABLE, in-flight
        calls finish, then close."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        try:
            self._lifecycle.draining = True
            await self._health.enter_graceful_shutdown()
            if self._watches is not None:
                self._watches.drain()
            if self._server is not None:
                self._wakeup.notify()
                await self._server.stop(self.settings.shutdown_grace_seconds if grace is None else grace)
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self._statistics is not None:
                await self._statistics.close()
            if self._listener is not None:
                await self._listener.stop()
            if self._metrics_endpoint is not None:
                await self._metrics_endpoint.stop()
            if self._pool is not None:
                await self._pool.close()
        finally:
            self._stopped.set()
