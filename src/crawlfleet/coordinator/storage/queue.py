"""The job queue in PostgreSQL, worker and producer side. This module and queue_admin.py (the
operator side) are the only modules of the coordinator that run SQL.

Every method is one short transaction over a named query of sql/queries. asyncpg errors are
translated here into coordinator.errors, so callers never see a driver exception.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from crawlfleet.coordinator.api.results import ResultRows, columns
from crawlfleet.coordinator.api.validation import NewJob
from crawlfleet.coordinator.errors import DatabaseUnavailable, JobNotFound, LeaseLost, ResultMismatch
from crawlfleet.coordinator.storage import sql

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "crawlfleet_jobs"
# A unique-index race (two claimers, two queued jobs of one URL) is retried this often.
_CONFLICT_RETRIES = 5

_UNAVAILABLE_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class LeasedRow:
    id: int
    kind: str
    spec: bytes
    attempt: int
    max_attempts: int
    lease_token: uuid.UUID
    lease_expires_at: dt.datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class LeaseExtension:
    """Heartbeat answer for one lease: state is 'leased' (extended) or 'cancelled'."""

    state: str
    lease_expires_at: dt.datetime | None


@dataclass(frozen=True, kw_only=True, slots=True)
class FailOutcome:
    state: str
    run_at: dt.datetime


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Turn losing the database into DatabaseUnavailable at this one boundary."""
    try:
        yield
    except _UNAVAILABLE_ERRORS as exc:
        raise DatabaseUnavailable(f"database unavailable: {exc.__class__.__name__}: {exc}") from exc


class Queue:
    """Queue operations over an asyncpg pool. `now` parameters exist so tests control time."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def enqueue(self, jobs: Sequence[NewJob], now: dt.datetime | None = None) -> list[tuple[int, bool]]:
        """Insert jobs; return (id, created) per job, in order. Dedupe onto live jobs."""
        results: list[tuple[int, bool] | None] = [None] * len(jobs)
        pending = list(range(len(jobs)))
        async with translated(), self._pool.acquire() as conn:
            for _ in range(_CONFLICT_RETRIES):
                batch = [jobs[i] for i in pending]
                rows = await conn.fetch(
                    sql.query("job_enqueue_many"),
                    [j.kind for j in batch],
                    [j.priority for j in batch],
                    [j.spec for j in batch],
                    [j.target_url for j in batch],
                    [j.dedupe_key for j in batch],
                    [j.run_at for j in batch],
                    [j.max_attempts for j in batch],
                    [j.retry_initial_ms for j in batch],
                    [j.retry_multiplier for j in batch],
                    [j.retry_max_ms for j in batch],
                    now,
                )
                unresolved: list[int] = []
                for row in rows:
                    index = pending[row["ord"] - 1]
                    if row["id"] is None:
                        unresolved.append(index)
                    else:
                        results[index] = (row["id"], row["created"])
                if not unresolved:
                    break
                # Their live twin committed after our snapshot: look it up in a fresh one.
                keys = [jobs[i].dedupe_key for i in unresolved]
                live = {
                    r["dedupe_key"]: r["id"] for r in await conn.fetch(sql.query("job_get_live_by_dedupe_keys"), keys)
                }
                pending = []
                for index in unresolved:
                    job_id = live.get(jobs[index].dedupe_key)
                    if job_id is None:
                        pending.append(index)  # the twin finished meanwhile: insert again
                    else:
                        results[index] = (job_id, False)
                if not pending:
                    break
        if any(r is None for r in results):
            raise DatabaseUnavailable("enqueue kept conflicting with concurrent jobs; retry")
        return [r for r in results if r is not None]

    async def lease(
        self,
        *,
        worker_id: str,
        max_jobs: int,
        kinds: Sequence[str],
        lease_seconds: float,
        now: dt.datetime | None = None,
    ) -> list[LeasedRow]:
        """Claim up to max_jobs due jobs for worker_id in one statement."""
        async with translated():
            for _ in range(_CONFLICT_RETRIES):
                try:
                    rows = await self._pool.fetch(
                        sql.query("job_lease_available"),
                        worker_id,
                        max_jobs,
                        list(kinds),
                        round(lease_seconds * 1000),
                        now,
                    )
                except asyncpg.UniqueViolationError:
                    # Another claimer leased a twin of one of our URLs first; the retry skips it.
                    continue
                return [
                    LeasedRow(
                        id=r["id"],
                        kind=r["kind"],
                        spec=r["spec"],
                        attempt=r["attempt"],
                        max_attempts=r["max_attempts"],
                        lease_token=r["lease_token"],
                        lease_expires_at=r["lease_expires_at"],
                    )
                    for r in rows
                ]
        return []

    async def worker_seen(
        self, *, worker_id: str, host: str, version: str, kinds: Sequence[str], now: dt.datetime | None = None
    ) -> None:
        async with translated():
            await self._pool.execute(sql.query("worker_seen"), worker_id, host, version, list(kinds), now)

    async def heartbeat(
        self, leases: Sequence[tuple[int, uuid.UUID]], *, lease_seconds: float, now: dt.datetime | None = None
    ) -> dict[int, LeaseExtension]:
        """Extend held leases; the answer omits lost ones."""
        async with translated():
            rows = await self._pool.fetch(
                sql.query("job_heartbeat_many"),
                [job_id for job_id, _ in leases],
                [token for _, token in leases],
                round(lease_seconds * 1000),
                now,
            )
        return {r["id"]: LeaseExtension(state=r["state"], lease_expires_at=r["lease_expires_at"]) for r in rows}

    async def complete(
        self,
        items: Sequence[tuple[int, uuid.UUID, bytes]],
        rows: Mapping[int, ResultRows] | None = None,
        now: dt.datetime | None = None,
    ) -> int:
        """Complete leased jobs, all or nothing; return how many were completed now (not replays).

        A job already succeeded under the same token with the same result is a replay (fine);
        any other stale token raises LeaseLost and changes nothing. `rows` holds scrape results,
        written in the transaction that completes their jobs. Without any, completing is one
        statement: no transaction round trips on the hot path.
        """
        pending = list(items)
        rows = {job_id: part for job_id, part in (rows or {}).items() if part}
        async with translated(), self._pool.acquire() as conn:
            for _ in range(_CONFLICT_RETRIES):
                if any(job_id in rows for job_id, _, _ in pending):
                    async with conn.transaction():
                        if await self._complete_all(conn, pending, now):
                            await self._store_results(conn, [rows[i] for i, _, _ in pending if i in rows], now)
                            return len(pending)
                elif await self._complete_all(conn, pending, now):
                    return len(pending)
                pending = await self._drop_replays(conn, pending)
                if not pending:
                    return 0
        raise DatabaseUnavailable("completing kept racing with concurrent changes; retry")

    @staticmethod
    async def _complete_all(
        conn: asyncpg.Connection, items: Sequence[tuple[int, uuid.UUID, bytes]], now: dt.datetime | None
    ) -> bool:
        done = await conn.fetch(
            sql.query("job_complete_if_leased_many"),
            [i[0] for i in items],
            [i[1] for i in items],
            [i[2] for i in items],
            now,
        )
        return len(done) == len(items)

    @staticmethod
    async def _drop_replays(
        conn: asyncpg.Connection, items: Sequence[tuple[int, uuid.UUID, bytes]]
    ) -> list[tuple[int, uuid.UUID, bytes]]:
        """The items still to complete once replays are set aside; raise if any lease is lost."""
        current = {r["id"]: r for r in await conn.fetch(sql.query("job_get_fencing_many"), [i[0] for i in items])}
        lost, mismatched, remaining = [], [], []
        for item in items:
            job_id, token, result = item
            row = current.get(job_id)
            if row is None or row["lease_token"] != token or row["state"] not in ("leased", "succeeded"):
                lost.append(job_id)
            elif row["state"] == "leased":
                remaining.append(item)
            elif row["result"] != result:
                mismatched.append(job_id)
        if lost:
            raise LeaseLost(lost)
        if mismatched:
            raise ResultMismatch(
                f"job(s) {mismatched} already completed under this lease with a different result",
                metadata={"job_ids": ",".join(map(str, mismatched))},
            )
        return remaining

    @staticmethod
    async def _store_results(conn: asyncpg.Connection, results: Sequence[ResultRows], now: dt.datetime | None) -> None:
        """Write scrape results; images before the thumbnails and page images that refer to them."""
        merged = ResultRows()
        for part in results:
            merged.extend(part)
        if merged.images:
            await conn.execute(sql.query("image_insert_many"), *columns(merged.images, 6), now)
        if merged.thumbnails:
            await conn.execute(sql.query("thumbnail_insert_many"), *columns(merged.thumbnails, 7))
        if merged.pages:
            await conn.execute(sql.query("page_insert_many"), *columns(merged.pages, 18), now)
        if merged.page_images:
            await conn.execute(sql.query("page_image_insert_many"), *columns(merged.page_images, 6))

    async def fail(
        self,
        *,
        job_id: int,
        lease_token: uuid.UUID,
        error_type: str,
        error_message: str,
        retryable: bool,
        retry_after_seconds: float | None,
        release: bool,
        now: dt.datetime | None = None,
    ) -> FailOutcome:
        """Record a failed (or released) attempt; raise LeaseLost if the token is stale."""
        retry_ms = None if retry_after_seconds is None else retry_after_seconds * 1000
        async with translated():
            row = await self._pool.fetchrow(
                sql.query("job_fail_if_leased"),
                job_id,
                lease_token,
                error_type,
                error_message,
                retryable,
                retry_ms,
                release,
                now,
            )
        if row is None:
            raise LeaseLost([job_id])
        return FailOutcome(state=row["state"], run_at=row["run_at"])

    async def reap_expired(self, *, batch: int, now: dt.datetime | None = None) -> list[tuple[int, str]]:
        """End up to `batch` expired leases; return (job id, new state)."""
        async with translated():
            rows = await self._pool.fetch(sql.query("job_reap_expired"), batch, now)
        return [(r["id"], r["state"]) for r in rows]

    async def cancel(self, job_id: int, now: dt.datetime | None = None) -> str:
        """Cancel a job; return its state afterwards (leased jobs end at their next heartbeat)."""
        async with translated():
            row = await self._pool.fetchrow(sql.query("job_cancel"), job_id, now)
        if row is None:
            raise JobNotFound(job_id)
        return str(row["state"])

    async def thumbnail(self, sha256: str) -> asyncpg.Record | None:
        async with translated():
            return await self._pool.fetchrow(sql.query("thumbnail_get"), sha256)

    async def results_after(self, after_id: int, limit: int, kind: str | None) -> list[asyncpg.Record]:
        """Succeeded jobs with results, by id after a cursor."""
        async with translated():
            return list(await self._pool.fetch(sql.query("result_list_after"), after_id, limit, kind))

    async def get_job(self, job_id: int) -> tuple[asyncpg.Record, list[asyncpg.Record]]:
        """The job row and its finished attempts."""
        async with translated(), self._pool.acquire() as conn:
            job = await conn.fetchrow(sql.query("job_get"), job_id)
            if job is None:
                raise JobNotFound(job_id)
            attempts = await conn.fetch(sql.query("job_attempt_list"), job_id)
        return job, attempts

    async def ping(self, timeout: float) -> None:
        """Raise DatabaseUnavailable unless the database answers within timeout."""
        async with translated():
            try:
                await self._pool.fetchval(sql.query("database_ping"), timeout=timeout)
            except TimeoutError as exc:
                raise DatabaseUnavailable("database did not answer the health probe in time") from exc
