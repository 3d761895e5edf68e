"""Periodic tasks of a coordinator: the lease reaper, count folding and the database health probe."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from crawlfleet.coordinator.errors import DatabaseUnavailable
from crawlfleet.coordinator.metrics import CoordinatorMetrics
from crawlfleet.coordinator.storage.admin import AdminQueue
from crawlfleet.coordinator.storage.crawls import CrawlStore
from crawlfleet.coordinator.storage.queue import Queue
from crawlfleet.coordinator.wakeup import LeaseWakeup

log = logging.getLogger(__name__)
REAP_BATCH = 1000
# Job count deltas are folded this often; readers add what is not folded yet, so counts stay exact.
COUNT_FOLD_SECONDS = 2.0
PING_TIMEOUT_SECONDS = 2.0


async def reap_forever(queue: Queue, wakeup: LeaseWakeup, interval: float, metrics: CoordinatorMetrics) -> None:
    """Return expired leases to the queue (or dead) every interval; every coordinator runs one.

    SKIP LOCKED lets several reapers share the work without waiting on each other.
    """
    while True:
        try:
            while True:
                reaped = await queue.reap_expired(batch=REAP_BATCH)
                if reaped:
                    metrics.reaped(job.state for job in reaped)
                    log.info("reaped %d expired lease(s)", len(reaped), extra={"job_ids": [job.id for job in reaped]})
                    wakeup.notify()
                if len(reaped) < REAP_BATCH:
                    break
        except DatabaseUnavailable as exc:
            log.warning("reaper: %s", exc.message)
        await asyncio.sleep(interval)


async def finish_crawls_forever(crawls: CrawlStore, interval: float) -> None:
    """Mark crawls finished once none of their jobs is queued or leased; every coordinator runs
    one (finishing twice is harmless: the second finds nothing running)."""
    while True:
        try:
            for crawl_id in await crawls.finish_idle():
                log.info("crawl %d finished", crawl_id, extra={"crawl_id": crawl_id})
        except DatabaseUnavailable as exc:
            log.warning("crawl finisher: %s", exc.message)
        await asyncio.sleep(interval)


async def fold_counts_forever(admin: AdminQueue, interval: float) -> None:
    """Fold job count deltas into job_counts, keeping the deltas table (and count reads) small."""
    while True:
        try:
            await admin.fold_counts()
        except DatabaseUnavailable as exc:
            log.warning("count folding: %s", exc.message)
        await asyncio.sleep(interval)


async def probe_database_forever(queue: Queue, interval: float, on_change: Callable[[bool], Awaitable[None]]) -> None:
    """Report database reachability to on_change whenever it flips."""
    healthy: bool | None = None
    while True:
        try:
            await queue.ping(PING_TIMEOUT_SECONDS)
            now_healthy = True
        except DatabaseUnavailable as exc:
            now_healthy = False
            if healthy is not False:
                log.error("database unreachable: %s", exc.message)
        if now_healthy != healthy:
            healthy = now_healthy
            await on_change(healthy)
        await asyncio.sleep(interval)
