"""The storage side of WatchJobs: which watched jobs are terminal (or gone), the unfinished jobs,
and the registration that turns the finish notifies on.

Jobs reaching a terminal state send ``NOTIFY crawlfleet_jobs_finished`` from the statement that
finishes them (sql/queries/jobs.sql), but only while some coordinator with open streams is
registered in ``job_watchers``; streams re-check their unfinished ids with one set-based query
(sql/queries/watch.sql) when it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from typing import NamedTuple

import asyncpg

from crawlfleet.coordinator.errors import DatabaseUnavailable
from crawlfleet.coordinator.storage import statements as q
from crawlfleet.coordinator.storage.rows import WatchedJob
from crawlfleet.coordinator.storage.translate import connection

log = logging.getLogger(__name__)

FINISHED_CHANNEL = "crawlfleet_jobs_finished"
# A registration lasts this long unless refreshed, so a crashed coordinator's runs out soon.
WATCHER_TTL_SECONDS = 30.0
WATCHER_REFRESH_SECONDS = WATCHER_TTL_SECONDS / 3


class UnfinishedJobs(NamedTuple):
    """Ids of queued and leased jobs; `complete` is False when there were more than asked for."""

    ids: list[int]
    complete: bool


class WatchQueries:
    """The queries of WatchJobs over an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def finished_or_missing(
        self, job_ids: Sequence[int], *, find_missing: bool, owner: str | None = None
    ) -> list[WatchedJob]:
        """The jobs among job_ids that are terminal and, if find_missing, the ids that match no job;
        with an `owner`, another owner's job counts as no job."""
        if not job_ids:
            return []
        async with connection(self._pool) as conn:
            return await q.JOB_WATCH_FINISHED_MANY.fetch(
                conn, job_ids=list(job_ids), find_missing=find_missing, owner=owner
            )

    async def unfinished_ids(self, limit: int, *, owner: str | None = None) -> UnfinishedJobs:
        """Ids of up to `limit` queued or leased jobs (of `owner`, when given)."""
        async with connection(self._pool) as conn:
            row = await q.JOB_LIST_UNFINISHED_IDS.fetch_one(conn, limit=limit + 1, owner=owner)
        ids = (row.ids if row else None) or []
        return UnfinishedJobs(ids=ids[:limit], complete=len(ids) <= limit)

    async def register_watcher(self, coordinator_id: uuid.UUID, ttl_seconds: float) -> None:
        async with connection(self._pool) as conn:
            await q.JOB_WATCHER_REGISTER.execute(conn, coordinator_id=coordinator_id, ttl_ms=round(ttl_seconds * 1000))

    async def unregister_watcher(self, coordinator_id: uuid.UUID) -> None:
        async with connection(self._pool) as conn:
            await q.JOB_WATCHER_UNREGISTER.execute(conn, coordinator_id=coordinator_id)


class WatcherRegistration:
    """Keeps this coordinator in job_watchers while it has streams open: finish notifies are on.

    ``acquire()`` when a stream opens (registers on the first one), ``release()`` when it closes
    (unregisters after the last one). A task refreshes the registration meanwhile.
    """

    def __init__(self, queries: WatchQueries) -> None:
        self._queries = queries
        self.coordinator_id = uuid.uuid4()
        self._users = 0
        self._lock = asyncio.Lock()  # register and unregister never interleave
        self._refresher: asyncio.Task[None] | None = None

    async def acquire(self) -> None:
        """Count one more stream; the first registers before returning (DatabaseUnavailable if it cannot)."""
        async with self._lock:
            if self._users == 0:
                await self._queries.register_watcher(self.coordinator_id, WATCHER_TTL_SECONDS)
                self._refresher = asyncio.create_task(self._refresh_forever(), name="watcher-refresh")
            self._users += 1

    async def release(self) -> None:
        """Count one stream less; after the last, stop refreshing and unregister (best effort)."""
        async with self._lock:
            self._users -= 1
            if self._users > 0:
                return
            if self._refresher is not None:
                self._refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._refresher
                self._refresher = None
            try:
                await self._queries.unregister_watcher(self.coordinator_id)
            except DatabaseUnavailable as exc:
                log.warning("watch registration left to expire: %s", exc.message)

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(WATCHER_REFRESH_SECONDS)
            try:
                await self._queries.register_watcher(self.coordinator_id, WATCHER_TTL_SECONDS)
            except DatabaseUnavailable as exc:
                # Notifies may stop once it expires; the streams' periodic re-check still reports.
                log.warning("watch registration not refreshed: %s", exc.message)
