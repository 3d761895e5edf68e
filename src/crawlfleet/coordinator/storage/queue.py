"""The job queue in PostgreSQL as the JobQueue service and the coordinator's own tasks use it:
enqueue, lease, heartbeat, complete, fail, hosts' robots.txt, reap expired leases, ping. The
operator side is admin.py.

Every method is one short transaction over named statements (statements.py) and returns typed
rows; driver errors become coordinator errors (translate.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Mapping, Sequence

import asyncpg

from crawlfleet.common.robots import RobotsState, skips_job
from crawlfleet.coordinator.errors import DatabaseUnavailable, LeaseLost
from crawlfleet.coordinator.politeness import Politeness, robots_state_of
from crawlfleet.coordinator.storage import completion
from crawlfleet.coordinator.storage import statements as q
from crawlfleet.coordinator.storage.crawls import CompletedInCrawl, CrawlStore
from crawlfleet.coordinator.storage.result_rows import ResultRows, StoredImage
from crawlfleet.coordinator.storage.rows import (
    Completion,
    EnqueuedJob,
    FailOutcome,
    HostRobots,
    LatencySample,
    LeasedJob,
    LeaseExtension,
    LeaseRef,
    NewJob,
    ReapedJob,
    RobotsReported,
)
from crawlfleet.coordinator.storage.translate import connection
from crawlfleet.v1 import jobs_pb2

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "crawlfleet_jobs"
# A unique-index race (two claimers, two queued jobs of one URL) is retried this often.
_CONFLICT_RETRIES = 5
# Characters of a robots.txt failure kept in the host's pause reason.
_PAUSE_DETAIL_CHARS = 200


class Queue:
    """Queue operations over an asyncpg pool. `now` parameters exist so tests control time."""

    def __init__(
        self, pool: asyncpg.Pool, politeness: Politeness | None = None, crawls: CrawlStore | None = None
    ) -> None:
        self._pool = pool
        self._politeness = politeness or Politeness()
        self._crawls = crawls or CrawlStore(pool)

    async def enqueue(
        self, jobs: Sequence[NewJob], now: dt.datetime | None = None, *, owner: str | None = None
    ) -> list[EnqueuedJob]:
        """Insert jobs owned by `owner` (None: nobody's); return (id, created) per job, in order.
        Dedupe onto live jobs (an owner's dedupe keys name it: see api/validation.py)."""
        results: list[EnqueuedJob | None] = [None] * len(jobs)
        pending = list(range(len(jobs)))
        async with connection(self._pool) as conn:
            for _ in range(_CONFLICT_RETRIES):
                batch = jobs if len(pending) == len(jobs) else [jobs[i] for i in pending]
                outcome = await q.JOB_ENQUEUE_MANY.fetch_one(conn, batch, now=now, owner=owner)
                assert outcome is not None  # an aggregate: always one row
                unresolved: list[int] = []
                for index, job_id, created, live_spec in zip(
                    pending, outcome.ids, outcome.created, outcome.live_specs, strict=True
                ):
                    if job_id is None:
                        unresolved.append(index)
                    else:
                        results[index] = EnqueuedJob(job_id, created, live_spec)
                if not unresolved:
                    break
                # Their live twin committed after our snapshot: look it up in a fresh one.
                keys = [jobs[i].dedupe_key for i in unresolved]
                twins = await q.JOB_GET_LIVE_BY_DEDUPE_KEYS.fetch(conn, dedupe_keys=keys)
                live: dict[str | None, int] = {job.dedupe_key: job.id for job in twins}
                pending = []
                for index in unresolved:
                    job_id = live.get(jobs[index].dedupe_key)
                    if job_id is None:
                        pending.append(index)  # the twin finished meanwhile: insert again
                    else:
                        results[index] = EnqueuedJob(id=job_id, created=False)
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
        principal: str | None = None,
        now: dt.datetime | None = None,
    ) -> list[LeasedJob]:
        """Claim up to max_jobs due jobs for worker_id in one statement, the leases bound to
        `principal` (None: unbound, auth off); host-bound jobs within their hosts' limits."""
        polite = self._politeness
        async with connection(self._pool) as conn:
            for _ in range(_CONFLICT_RETRIES):
                try:
                    return await q.JOB_LEASE_AVAILABLE.fetch(
                        conn,
                        worker_id=worker_id,
                        max_jobs=max_jobs,
                        kinds=list(kinds),
                        lease_ms=round(lease_seconds * 1000),
                        now=now,
                        principal=principal,
                        host_concurrency=polite.host_concurrency,
                        host_delay_ms=round(polite.host_delay_seconds * 1000),
                        obey_robots=polite.obey_robots,
                        saturated_recheck_ms=round(polite.saturated_recheck_seconds * 1000),
                    )
                except asyncpg.UniqueViolationError:
                    # Another claimer leased a twin of one of our URLs first; the retry skips it.
                    continue
        return []

    async def adapt_host_delays(self, samples: Sequence[LatencySample]) -> None:
        """Let the hosts of completed jobs learn their delay from the response times (best effort)."""
        polite = self._politeness
        async with connection(self._pool) as conn:
            await q.HOST_ADAPT_DELAY.execute(
                conn,
                samples,
                target_concurrency=polite.adaptive_target_concurrency,
                max_delay_ms=polite.adaptive_max_delay_seconds * 1000,
            )

    async def next_host_ready(self) -> dt.datetime | None:
        """When the next host with queued work may be leased from (None: no host waits)."""
        async with connection(self._pool) as conn:
            row = await q.HOST_NEXT_READY.fetch_one(conn)
        return None if row is None else row.ready_at

    async def worker_seen(
        self,
        *,
        worker_id: str,
        host: str,
        version: str,
        kinds: Sequence[str],
        slots: int = 0,
        now: dt.datetime | None = None,
    ) -> None:
        """Record a worker from its Lease call; ``slots`` 0 means the worker did not report them."""
        async with connection(self._pool) as conn:
            await q.WORKER_SEEN.execute(
                conn, worker_id=worker_id, host=host, version=version, kinds=list(kinds), slots=slots, now=now
            )

    async def heartbeat(
        self,
        leases: Sequence[LeaseRef],
        *,
        lease_seconds: float,
        principal: str | None = None,
        now: dt.datetime | None = None,
    ) -> dict[int, LeaseExtension]:
        """Extend held leases; the answer omits lost ones (and those bound to another principal)."""
        async with connection(self._pool) as conn:
            extended = await q.JOB_HEARTBEAT_MANY.fetch(
                conn, leases, lease_ms=round(lease_seconds * 1000), now=now, principal=principal
            )
        return {ext.id: ext for ext in extended}

    async def complete(
        self,
        items: Sequence[Completion],
        rows: Mapping[int, ResultRows] | None = None,
        now: dt.datetime | None = None,
        *,
        principal: str | None = None,
        results: Mapping[int, jobs_pb2.JobResult] | None = None,
    ) -> int:
        """Complete leased jobs, all or nothing; return how many were completed now (not replays).

        A job already succeeded under the same token with the same result is a replay (fine);
        any other stale token, or a lease bound to another principal than `principal`, raises
        LeaseLost and changes nothing. `rows` holds scrape results, written in the transaction
        that completes their jobs; `results` the results that may feed a crawl (scrape and sitemap
        results): the jobs of crawls among them have their links discovered in that transaction
        too. Without either, completing is one statement: no transaction round trips on the hot
        path.
        """
        pending = list(items)
        rows = {job_id: part for job_id, part in (rows or {}).items() if part}
        results = results or {}
        async with connection(self._pool) as conn:
            for _ in range(_CONFLICT_RETRIES):
                try:
                    if any(item.job_id in rows or item.job_id in results for item in pending):
                        async with conn.transaction():
                            completed = await completion.complete_all(conn, pending, now, principal)
                            parts = [rows[item.job_id] for item in pending if item.job_id in rows]
                            await completion.store_results(conn, ResultRows.merge(parts), now)
                            in_crawls = [
                                CompletedInCrawl(job.crawl_id, job.depth or 0, results[job.id], job.id)
                                for job in completed
                                if job.crawl_id is not None and job.id in results
                            ]
                            await self._crawls.discover_in(conn, in_crawls, now)
                    else:
                        await completion.complete_all(conn, pending, now, principal)
                    return len(pending)
                except completion.NotAllHeld:
                    pass  # nothing changed: set the replays and lost leases aside, then try the rest
                pending = await completion.drop_replays(conn, pending, principal)
                if not pending:
                    return 0
        raise DatabaseUnavailable("completing kept racing with concurrent changes; retry")

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
        principal: str | None = None,
        now: dt.datetime | None = None,
    ) -> FailOutcome:
        """Record a failed (or released) attempt; raise LeaseLost if the token is stale or the
        lease is bound to another principal."""
        polite = self._politeness
        penalty = polite.penalty(error_type, retry_after_seconds, release=release)
        async with connection(self._pool) as conn:
            outcome = await q.JOB_FAIL_IF_LEASED.fetch_one(
                conn,
                job_id=job_id,
                lease_token=lease_token,
                error_type=error_type,
                error_message=error_message,
                retryable=retryable,
                retry_delay_ms=None if retry_after_seconds is None else retry_after_seconds * 1000,
                release=release,
                now=now,
                principal=principal,
                host_failure=penalty.failure,
                host_pause_ms=penalty.asked_pause_ms,
                breaker_failures=polite.breaker_failures,
                backoff_initial_ms=polite.backoff_initial_seconds * 1000,
                backoff_max_ms=polite.backoff_max_seconds * 1000,
                skip=skips_job(error_type, retryable=retryable, release=release),
            )
        if outcome is None:
            raise LeaseLost([job_id])
        return outcome

    async def report_robots(
        self,
        *,
        job_id: int,
        lease_token: uuid.UUID,
        host: str,
        status_code: int,
        body: bytes,
        error_type: str,
        error_message: str,
        crawl_delay_seconds: float | None,
        principal: str | None = None,
        now: dt.datetime | None = None,
    ) -> RobotsReported:
        """Store the robots.txt a lease of `host` fetched (status_code 0: none came, error_type says
        why) for the fleet; raise LeaseLost unless that lease is held, by `principal`, for `host`."""
        polite = self._politeness
        state = robots_state_of(status_code, error_type)
        failure = f"HTTP {status_code}" if status_code else f"{error_type}: {error_message}"
        async with connection(self._pool) as conn:
            reported = await q.HOST_ROBOTS_REPORT.fetch_one(
                conn,
                job_id=job_id,
                lease_token=lease_token,
                principal=principal,
                host=host,
                state=state.value,
                status_code=status_code or None,
                body=body if state is RobotsState.RULES else None,
                delay_ms=polite.robots_delay_ms(crawl_delay_seconds),
                ttl_ms=polite.robots_ttl_seconds * 1000,
                backoff_initial_ms=polite.backoff_initial_seconds * 1000,
                backoff_max_ms=polite.backoff_max_seconds * 1000,
                pause_reason=f"robots_unreachable: robots.txt {failure}"[:_PAUSE_DETAIL_CHARS],
                now=now,
            )
        if reported is None or not reported.lease_held:
            raise LeaseLost([job_id])
        return reported

    async def robots(self, host: str) -> HostRobots | None:
        """A host's robots.txt as the fleet holds it (None: the host has had no jobs)."""
        async with connection(self._pool) as conn:
            return await q.HOST_ROBOTS_GET.fetch_one(conn, host=host)

    async def stored_images(self, sha256s: Sequence[str]) -> list[StoredImage]:
        """The images among `sha256s` the store holds, with their thumbnails' metadata."""
        async with connection(self._pool) as conn:
            return await q.IMAGE_FIND_STORED.fetch(conn, sha256s=list(sha256s))

    async def reap_expired(self, *, batch: int, now: dt.datetime | None = None) -> list[ReapedJob]:
        """End up to `batch` expired leases; the jobs with their new state."""
        async with connection(self._pool) as conn:
            return await q.JOB_REAP_EXPIRED.fetch(conn, batch=batch, now=now)

    async def analyze(self) -> None:
        """Refresh the planner's statistics of the jobs and hosts tables (bounded: it samples)."""
        async with connection(self._pool) as conn:
            await q.JOB_TABLE_ANALYZE.execute(conn)

    async def ping(self, timeout: float) -> None:
        """Raise DatabaseUnavailable unless the database answers within timeout."""
        async with connection(self._pool) as conn:
            try:
                await q.DATABASE_PING.execute(conn, timeout=timeout)
            except TimeoutError as exc:
                raise DatabaseUnavailable("database did not answer the health probe in time") from exc
