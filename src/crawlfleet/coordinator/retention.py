"""Retention: finished jobs older than a limit are deleted in the background, with their attempts,
pages and the images no page refers to any more, so the jobs table holds the live queue and a
bounded history rather than everything ever run.

The same removal as PurgeJobs (AdminQueue.purge): short batches in their own transactions, taking
turns across coordinators through an advisory lock; a coordinator that finds another at it skips
its turn. Flags under "retention"; docs/operations.md explains the default (keep everything).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

from crawlfleet.common.durations import duration_seconds
from crawlfleet.common.flags import EnvFlags, positive_float, positive_int
from crawlfleet.common.states import JobState
from crawlfleet.coordinator.errors import DatabaseUnavailable
from crawlfleet.coordinator.metrics import CoordinatorMetrics
from crawlfleet.coordinator.storage.admin import AdminQueue

log = logging.getLogger(__name__)

# Results are what producers come for, and refresh crawls and page-change history compare new
# fetches with old ones: nothing is deleted unless an operator chooses a limit.
KEEP = "keep"
SAME = "same"
DEFAULT_RETENTION = KEEP
DEFAULT_DEAD_RETENTION = SAME
# A limit shorter than this is a typo (30 for 30d), not a policy: WatchJobs, replayed Completes
# and producers waiting on results all expect a finished job to be there for a while.
MIN_RETENTION_SECONDS = 3600.0
DEFAULT_RETENTION_INTERVAL_SECONDS = 60.0
# Jobs per transaction: a few hundred ms of deleting (with cascades) at most, so row locks and
# the advisory lock are short and a PurgeJobs call waits at most one batch.
DEFAULT_RETENTION_BATCH = 1000
KEPT_FOR_RETENTION = (JobState.SUCCEEDED.value, JobState.CANCELLED.value, JobState.SKIPPED.value)
DEAD = (JobState.DEAD.value,)


def retention_limit(text: str) -> float | None:
    """A flag type: ``keep`` (None), or a duration of at least an hour (``30d``, ``12h``, ``2w``)."""
    if text.strip().lower() == KEEP:
        return None
    try:
        seconds = duration_seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}, or {KEEP}") from None
    if seconds < MIN_RETENTION_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at least 1h (or {KEEP}), got {text!r}")
    return seconds


def dead_retention_limit(text: str) -> str:
    """A flag type: ``same`` (as --retention) or what ``retention_limit`` takes; kept as text."""
    if text.strip().lower() != SAME:
        retention_limit(text)
    return text


@dataclass(frozen=True, kw_only=True)
class Retention:
    """How long finished jobs are kept (None: for ever), and how the background removal runs."""

    # Succeeded, cancelled and skipped jobs.
    finished_seconds: float | None = None
    # Dead jobs: the dead letter operators replay from.
    dead_seconds: float | None = None
    interval_seconds: float = DEFAULT_RETENTION_INTERVAL_SECONDS
    batch: int = DEFAULT_RETENTION_BATCH

    @property
    def enabled(self) -> bool:
        return self.finished_seconds is not None or self.dead_seconds is not None

    def rules(self) -> list[tuple[tuple[str, ...], float]]:
        """(states, seconds kept) of each limit in force."""
        rules: list[tuple[tuple[str, ...], float]] = []
        if self.finished_seconds is not None:
            rules.append((KEPT_FOR_RETENTION, self.finished_seconds))
        if self.dead_seconds is not None:
            rules.append((DEAD, self.dead_seconds))
        return rules


def add_retention_flags(flags: EnvFlags) -> None:
    """The ``retention`` flags of ``crawlfleet-coordinator``."""
    flags.add(
        "--retention",
        DEFAULT_RETENTION,
        "delete succeeded, cancelled and skipped jobs (with attempts, pages, orphan images) this long "
        "after they finished, e.g. 30d; keep: never",
        type=retention_limit,
        metavar="DURATION",
    )
    flags.add(
        "--dead-retention",
        DEFAULT_DEAD_RETENTION,
        "the same for dead jobs; same: as --retention",
        type=dead_retention_limit,
        metavar="DURATION",
    )
    flags.add(
        "--retention-interval-seconds",
        DEFAULT_RETENTION_INTERVAL_SECONDS,
        "how often the removal looks for expired jobs",
        type=positive_float,
    )
    flags.add("--retention-batch", DEFAULT_RETENTION_BATCH, "jobs deleted per transaction", type=positive_int)


def retention_from_args(args: argparse.Namespace) -> Retention:
    finished: float | None = args.retention
    dead_text: str = args.dead_retention
    dead = finished if dead_text.strip().lower() == SAME else retention_limit(dead_text)
    return Retention(
        finished_seconds=finished,
        dead_seconds=dead,
        interval_seconds=args.retention_interval_seconds,
        batch=args.retention_batch,
    )


async def remove_expired(
    admin: AdminQueue, retention: Retention, metrics: CoordinatorMetrics, *, now: dt.datetime | None = None
) -> dict[str, int]:
    """One pass: batches of each rule until one comes back short, or until another coordinator
    holds the turn (it carries on); then the crawls that ended before --retention and have no job
    left. Returns the jobs deleted by state."""
    now = now or dt.datetime.now(dt.UTC)
    removed = await _remove_expired_jobs(admin, retention, metrics, now)
    if retention.finished_seconds is not None:  # crawls take no turns: each call locks its crawl
        await remove_ended_crawls(admin, now - dt.timedelta(seconds=retention.finished_seconds), retention.batch)
    return removed


async def remove_ended_crawls(admin: AdminQueue, ended_before: dt.datetime, batch: int) -> int:
    """Ended crawls whose jobs are all gone go too, with their seen sets; the crawls deleted.
    A crawl with a job left (a dead one under a longer --dead-retention, say) stays whole,
    so GetCrawl never reports a crawl without the pages it lists."""
    deleted = 0
    while True:
        purged = await admin.purge_ended_crawl(ended_before=ended_before, limit=batch)
        if purged.crawl_id is None:
            return deleted
        if purged.deleted:
            deleted += 1
            log.info("retention: deleted crawl %d (its jobs were all removed)", purged.crawl_id)


async def _remove_expired_jobs(
    admin: AdminQueue, retention: Retention, metrics: CoordinatorMetrics, now: dt.datetime
) -> dict[str, int]:
    removed: dict[str, int] = {}
    for states, seconds in retention.rules():
        bound = now - dt.timedelta(seconds=seconds)
        while True:
            batch = await admin.purge(states=states, finished_before=bound, limit=retention.batch, wait=False)
            if batch is None:
                return removed
            metrics.removed(batch, by="retention")
            for state, count in batch.by_state.items():
                removed[state] = removed.get(state, 0) + count
            if batch.deleted_jobs < retention.batch:
                break
    return removed


async def remove_expired_forever(admin: AdminQueue, retention: Retention, metrics: CoordinatorMetrics) -> None:
    """Every coordinator runs one when a limit is set; they take turns."""
    while True:
        try:
            removed = await remove_expired(admin, retention, metrics)
            if removed:
                log.info("retention: deleted %d finished job(s) %s", sum(removed.values()), removed)
        except DatabaseUnavailable as exc:
            log.warning("retention: %s", exc.message)
        await asyncio.sleep(retention.interval_seconds)
