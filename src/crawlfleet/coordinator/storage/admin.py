"""The job queue as operators use it (the Admin service, and the job gauges and count upkeep of the
coordinator): jobs and their attempts, results, thumbnails, stats, health, workers, cancel,
requeue, purge. The worker and producer side is queue.py.

Every method is one short transaction over named statements (statements.py) and returns typed
rows; driver errors become coordinator errors (translate.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from crawlfleet.coordinator.errors import JobNotFound
from crawlfleet.coordinator.storage import statements as q
from crawlfleet.coordinator.storage.admin_rows import (
    ActivityMinute,
    DeletedImage,
    JobHistory,
    JobResultRow,
    JobSummary,
    OldestDue,
    PurgeCounts,
    QueueHealth,
    StoredThumbnail,
    WorkerRow,
)
from crawlfleet.coordinator.storage.crawl_rows import CrawlPurged
from crawlfleet.coordinator.storage.translate import connection


@dataclass(frozen=True, kw_only=True, slots=True)
class JobFilterValues:
    """A JobFilter with unset fields as None."""

    states: tuple[str, ...] = ()
    kind: str | None = None
    url_prefix: str | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    error_type: str | None = None


def _like_prefix(prefix: str | None) -> str | None:
    """A LIKE pattern matching the prefix literally."""
    if prefix is None:
        return None
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# GetQueueHealth counts due jobs as the queued count less those not yet due while these are
# fewer than this (one short index range), else counts the due ones (queue_health).
NOT_DUE_BOUND = 10_000


class AdminQueue:
    """Operator queries over an asyncpg pool. `now` parameters exist so tests control time."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get_job(self, job_id: int, *, owner: str | None = None) -> JobHistory:
        """The job and its attempts; JobNotFound unless it is `owner`'s (None: any job)."""
        async with connection(self._pool) as conn:
            job = await q.JOB_GET.fetch_one(conn, job_id=job_id, owner=owner)
            if job is None:
                raise JobNotFound(job_id)
            attempts = await q.JOB_ATTEMPT_LIST.fetch(conn, job_id=job_id)
        return JobHistory(job=job, attempts=attempts)

    async def cancel(self, job_id: int, now: dt.datetime | None = None) -> str:
        """Cancel a job; return its state afterwards (leased jobs end at their next heartbeat)."""
        async with connection(self._pool) as conn:
            outcome = await q.JOB_CANCEL.fetch_one(conn, job_id=job_id, now=now)
        if outcome is None:
            raise JobNotFound(job_id)
        return outcome.state

    async def thumbnail(self, sha256: str, *, owner: str | None = None) -> StoredThumbnail | None:
        """A thumbnail; for an `owner`, only of an image on a page of one of its jobs."""
        async with connection(self._pool) as conn:
            return await q.THUMBNAIL_GET.fetch_one(conn, sha256=sha256, owner=owner)

    async def results_after(
        self,
        after_id: int,
        limit: int,
        kind: str | None,
        *,
        max_bytes: int,
        owner: str | None = None,
        crawl_id: int | None = None,
        url_prefix: str | None = None,
        changed_since: dt.datetime | None = None,
    ) -> list[JobResultRow]:
        """Succeeded jobs with results (`owner`'s only, when given), by id after a cursor: at most
        ``limit`` rows and about ``max_bytes`` of them, but at least one row when any is there.
        Of one crawl's pages with ``crawl_id``; with ``changed_since``, only the pages that changed
        since then (new content, not a 304)."""
        url_like = _like_prefix(url_prefix)
        async with connection(self._pool) as conn:
            if crawl_id is not None:
                return await q.RESULT_LIST_CRAWL_AFTER.fetch(
                    conn, after_id=after_id, limit=limit, kind=kind, max_bytes=max_bytes, owner=owner, crawl_id=crawl_id
                )
            if changed_since is not None:
                return await q.RESULT_LIST_CHANGED_AFTER.fetch(
                    conn,
                    after_id=after_id,
                    limit=limit,
                    kind=kind,
                    max_bytes=max_bytes,
                    owner=owner,
                    changed_since=changed_since,
                    url_like=url_like,
                )
            return await q.RESULT_LIST_AFTER.fetch(
                conn, after_id=after_id, limit=limit, kind=kind, max_bytes=max_bytes, owner=owner, url_like=url_like
            )

    async def fold_counts(self) -> None:
        async with connection(self._pool) as conn:
            await q.JOB_COUNT_FOLD.execute(conn)
            await q.CRAWL_JOB_COUNT_FOLD.execute(conn)

    async def rebuild_counts(self) -> None:
        """Recount every job, and every crawl's jobs (full scans): repairs counts after SQL written
        behind the queue's back."""
        async with connection(self._pool) as conn, conn.transaction():
            await q.JOB_COUNT_LOCK.execute(conn)
            await q.JOB_COUNT_CLEAR.execute(conn)
            await q.JOB_COUNT_REBUILD.execute(conn)
        # Apart: holding both tables' locks at once could deadlock with a writer holding the other.
        async with connection(self._pool) as conn, conn.transaction():
            await q.CRAWL_JOB_COUNT_LOCK.execute(conn)
            await q.CRAWL_JOB_COUNT_CLEAR.execute(conn)
            await q.CRAWL_JOB_COUNT_REBUILD.execute(conn)

    async def counts(self) -> dict[tuple[str, str], int]:
        """Exact job counts by (kind, state)."""
        async with connection(self._pool) as conn:
            rows = await q.JOB_COUNT_BY_KIND_STATE.fetch(conn)
        return {(r.kind, r.state): r.jobs for r in rows}

    async def counts_by_state(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (_, state), count in (await self.counts()).items():
            totals[state] = totals.get(state, 0) + count
        return totals

    async def health(
        self, *, expiring_within: float, stuck_after: float, now: dt.datetime | None = None
    ) -> QueueHealth:
        """Queue health; `expired` counts leases expired more than `stuck_after` seconds ago."""
        async with connection(self._pool) as conn:
            health = await q.QUEUE_HEALTH.fetch_one(
                conn,
                expiring_ms=round(expiring_within * 1000),
                stuck_ms=round(stuck_after * 1000),
                now=now,
                not_due_bound=NOT_DUE_BOUND,
            )
        assert health is not None  # one row, always
        return health

    async def oldest_due(self, now: dt.datetime | None = None) -> OldestDue:
        """The oldest due job's run_at and the database clock: cheap at any depth (the gauge's)."""
        async with connection(self._pool) as conn:
            oldest = await q.QUEUE_OLDEST_DUE.fetch_one(conn, now=now)
        assert oldest is not None  # one row, always
        return oldest

    async def workers_seen_since(self, since: dt.datetime) -> list[WorkerRow]:
        async with connection(self._pool) as conn:
            return await q.WORKER_LIST_SEEN.fetch(conn, since=since)

    async def activity(self, *, since: dt.datetime, until: dt.datetime) -> list[ActivityMinute]:
        """Attempts that ended in [since, until), by minute (minutes without any are absent)."""
        async with connection(self._pool) as conn:
            return await q.QUEUE_ACTIVITY_BY_MINUTE.fetch(conn, since=since, until=until)

    async def list_jobs(self, flt: JobFilterValues, *, before_id: int, limit: int) -> list[JobSummary]:
        """Jobs matching the filter with id < before_id, newest first."""
        common: dict[str, Any] = {
            "kind": flt.kind,
            "url_like": _like_prefix(flt.url_prefix),
            "created_after": flt.created_after,
            "created_before": flt.created_before,
            "error_like": _like_prefix(flt.error_type),
            "before_id": before_id,
            "limit": limit,
        }
        async with connection(self._pool) as conn, conn.transaction():
            await q.PLAN_EACH_CALL.execute(conn)
            if flt.states:
                return await q.JOB_LIST_BY_STATE.fetch(conn, states=list(flt.states), **common)
            return await q.JOB_LIST_FILTERED.fetch(conn, **common)

    async def requeue_dead(
        self,
        flt: JobFilterValues,
        *,
        job_ids: Sequence[int] | None = None,
        limit: int,
        now: dt.datetime | None = None,
    ) -> list[int]:
        """Requeue dead jobs matching the filter (and among job_ids, when given); their ids."""
        async with connection(self._pool) as conn, conn.transaction():
            await q.PLAN_EACH_CALL.execute(conn)
            requeued = await q.JOB_REQUEUE_DEAD.fetch(
                conn,
                job_ids=None if job_ids is None else list(job_ids),
                kind=flt.kind,
                url_like=_like_prefix(flt.url_prefix),
                created_after=flt.created_after,
                created_before=flt.created_before,
                error_like=_like_prefix(flt.error_type),
                now=now,
                limit=limit,
            )
        return sorted(job.id for job in requeued)

    async def purge_ended_crawl(self, *, ended_before: dt.datetime, limit: int) -> CrawlPurged:
        """One short transaction of crawl retention: up to `limit` seen URLs (and per-host and
        per-path counts) of an ended crawl without jobs, and the crawl once none are left."""
        async with connection(self._pool) as conn:
            purged = await q.CRAWL_PURGE_ENDED.fetch_one(conn, ended_before=ended_before, limit=limit)
        assert purged is not None  # one row, always
        return purged

    async def purge(
        self, *, states: Sequence[str], finished_before: dt.datetime, limit: int, wait: bool = True
    ) -> PurgeCounts | None:
        """Delete up to `limit` finished jobs of `states` that finished before the bound, with their
        attempts and pages, and the images left without pages: one short transaction. Removals take
        turns across coordinators; with ``wait=False`` this returns None at once when another one
        is under way (retention tries again later) instead of waiting for it."""
        async with connection(self._pool) as conn, conn.transaction():
            if wait:
                await q.JOB_PURGE_LOCK.execute(conn)
            else:
                lock = await q.JOB_PURGE_TRY_LOCK.fetch_one(conn)
                if lock is None or not lock.locked:
                    return None
            purged = await q.JOB_PURGE_FINISHED.fetch_one(
                conn, states=list(states), finished_before=finished_before, limit=limit
            )
            assert purged is not None  # one row, always
            candidates = purged.image_candidates or []
            images: list[DeletedImage] = []
            if candidates:
                # Lock first, check after: see image_lock_for_removal (a Complete referring to one).
                await q.IMAGE_LOCK_FOR_REMOVAL.fetch(conn, sha256s=candidates)
                images = await q.IMAGE_DELETE_UNREFERENCED.fetch(conn, sha256s=candidates)
        return PurgeCounts(
            deleted_jobs=purged.deleted_jobs,
            deleted_images=len(images),
            by_state=dict(zip(purged.deleted_states, purged.deleted_counts, strict=True)),
        )
