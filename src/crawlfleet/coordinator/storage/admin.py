"""Operator queries of the queue (stats, health, listings, requeue, purge, counts folding).

With queue.py, the only modules of the coordinator that run SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from crawlfleet.coordinator.storage import sql
from crawlfleet.coordinator.storage.queue import translated


@dataclass(frozen=True, kw_only=True, slots=True)
class JobFilterValues:
    """A JobFilter with unset fields as None."""

    states: tuple[str, ...] = ()
    kind: str | None = None
    url_prefix: str | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    error_type: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Health:
    due: int
    oldest_due_run_at: dt.datetime | None
    expiring_soon: int
    expired: int
    now: dt.datetime


def _like_prefix(prefix: str | None) -> str | None:
    """A LIKE pattern matching the prefix literally."""
    if prefix is None:
        return None
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class AdminQueue:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def fold_counts(self) -> None:
        async with translated():
            await self._pool.execute(sql.query("job_count_fold"))

    async def rebuild_counts(self) -> None:
        """Recount every job (a full scan): repairs counts after SQL written behind the queue's back."""
        async with translated(), self._pool.acquire() as conn, conn.transaction():
            await conn.execute(sql.query("job_count_lock"))
            await conn.execute(sql.query("job_count_clear"))
            await conn.execute(sql.query("job_count_rebuild"))

    async def counts(self) -> dict[tuple[str, str], int]:
        """Exact job counts by (kind, state)."""
        async with translated():
            rows = await self._pool.fetch(sql.query("job_count_by_kind_state"))
        return {(r["kind"], r["state"]): r["count"] for r in rows}

    async def counts_by_state(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (_, state), count in (await self.counts()).items():
            totals[state] = totals.get(state, 0) + count
        return totals

    async def health(self, *, expiring_within: float, now: dt.datetime | None = None) -> Health:
        async with translated():
            row = await self._pool.fetchrow(sql.query("queue_health"), round(expiring_within * 1000), now)
        assert row is not None
        return Health(
            due=row["due"],
            oldest_due_run_at=row["oldest_due_run_at"],
            expiring_soon=row["expiring_soon"],
            expired=row["expired"],
            now=row["now"],
        )

    async def workers_seen_since(self, since: dt.datetime) -> list[asyncpg.Record]:
        async with translated():
            return list(await self._pool.fetch(sql.query("worker_list_seen"), since))

    async def list_jobs(self, flt: JobFilterValues, *, before_id: int, limit: int) -> list[asyncpg.Record]:
        """Jobs matching the filter with id < before_id, newest first."""
        async with translated():
            return list(
                await self._pool.fetch(
                    sql.query("job_list_filtered"),
                    list(flt.states),
                    flt.kind,
                    _like_prefix(flt.url_prefix),
                    flt.created_after,
                    flt.created_before,
                    _like_prefix(flt.error_type),
                    before_id,
                    limit,
                )
            )

    async def requeue_dead(
        self,
        flt: JobFilterValues,
        *,
        job_ids: Sequence[int] | None = None,
        limit: int,
        now: dt.datetime | None = None,
    ) -> list[int]:
        """Requeue dead jobs matching the filter (and among job_ids, when given); their ids."""
        async with translated():
            rows = await self._pool.fetch(
                sql.query("job_requeue_dead"),
                None if job_ids is None else list(job_ids),
                flt.kind,
                _like_prefix(flt.url_prefix),
                flt.created_after,
                flt.created_before,
                _like_prefix(flt.error_type),
                now,
                limit,
            )
        return sorted(r["id"] for r in rows)

    async def purge(self, *, states: Sequence[str], finished_before: dt.datetime, limit: int) -> tuple[int, int]:
        """Delete finished jobs and the images left without pages; (jobs, images) deleted."""
        async with translated(), self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(sql.query("job_purge_finished"), list(states), finished_before, limit)
            assert row is not None
            candidates = row["image_candidates"] or []
            images = await conn.fetch(sql.query("image_delete_unreferenced"), candidates) if candidates else []
        return row["deleted_jobs"], len(images)
