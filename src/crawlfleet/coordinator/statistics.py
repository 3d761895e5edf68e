"""Keeps the planner's statistics of the jobs and hosts tables fresh after large enqueues.

A freshly loaded table has none until autoanalyze comes round (up to a minute later): the planner
then guesses a handful of queued rows, and each claim scans and sorts the whole backlog instead of
walking the jobs_available index; likewise a load that brings thousands of new hosts to a hosts
table analyzed when it held a few, and each claim scans and sorts every host instead of walking
hosts_ready. The coordinator that enqueued many jobs analyzes both tables itself, in the
background, at most once per interval.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from crawlfleet.coordinator.errors import DatabaseUnavailable
from crawlfleet.coordinator.storage.queue import Queue

log = logging.getLogger(__name__)

# Enqueued jobs after which the statistics are refreshed (autoanalyze covers smaller changes).
ANALYZE_AFTER_JOBS = 5_000
ANALYZE_MIN_INTERVAL_SECONDS = 60.0


class JobStatistics:
    """Counts jobs this coordinator enqueued and analyzes the jobs table once enough arrived."""

    def __init__(self, queue: Queue, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._queue = queue
        self._clock = clock
        self._enqueued = 0
        self._last_run = -math.inf
        self._task: asyncio.Task[None] | None = None

    def enqueued(self, created: int) -> None:
        """Note `created` new jobs; start an ANALYZE when due. Never delays the caller."""
        self._enqueued += created
        if self._enqueued < ANALYZE_AFTER_JOBS or self._clock() - self._last_run < ANALYZE_MIN_INTERVAL_SECONDS:
            return
        if self._task is not None and not self._task.done():
            return
        self._enqueued = 0
        self._last_run = self._clock()
        self._task = asyncio.get_running_loop().create_task(self._analyze(), name="analyze-jobs")

    async def close(self) -> None:
        """Stop an ANALYZE still running (at shutdown)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _analyze(self) -> None:
        try:
            await self._queue.analyze()
        except DatabaseUnavailable as exc:
            log.warning("jobs table not analyzed: %s", exc.message)
