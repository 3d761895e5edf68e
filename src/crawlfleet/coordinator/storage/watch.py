"""Reads of WatchJobs streams: which watched jobs are terminal (or gone), and the unfinished jobs.

Jobs reaching a terminal state send ``NOTIFY crawlfleet_jobs_finished`` from the statement that
finishes them (sql/queries/jobs.sql); streams re-check their unfinished ids with one set-based
query (sql/queries/watch.sql) when it arrives.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

import asyncpg

from crawlfleet.coordinator.storage import sql
from crawlfleet.coordinator.storage.queue import translated

FINISHED_CHANNEL = "crawlfleet_jobs_finished"


class WatchedJobRow(NamedTuple):
    """A watched job that is terminal, or (state None) that does not exist."""

    id: int
    state: str | None
    attempt: int | None
    finished_at: dt.datetime | None
    last_error: str | None


class UnfinishedJobs(NamedTuple):
    """Ids of queued and leased jobs; `complete` is False when there were more than asked for."""

    ids: list[int]
    complete: bool


class WatchQueries:
    """The queries of WatchJobs over an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def finished_or_missing(self, job_ids: Sequence[int]) -> list[WatchedJobRow]:
        """The jobs among job_ids that are terminal, and the ids that match no job."""
        if not job_ids:
            return []
        async with translated():
            rows = await self._pool.fetch(sql.query("job_watch_finished_many"), list(job_ids))
        return [WatchedJobRow(*row) for row in rows]

    async def unfinished_ids(self, limit: int) -> UnfinishedJobs:
        """Ids of up to `limit` queued or leased jobs."""
        async with translated():
            rows = await self._pool.fetch(sql.query("job_list_unfinished_ids"), limit + 1)
        ids = [row["id"] for row in rows]
        return UnfinishedJobs(ids=ids[:limit], complete=len(ids) <= limit)
