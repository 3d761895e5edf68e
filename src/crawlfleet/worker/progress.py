"""A periodic INFO summary of job outcomes: operators see progress without a line per job."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

SUMMARY_INTERVAL = 10.0

Clock = Callable[[], float]


class JobCounts:
    """Job outcomes, each job counted once by how it ended. ``lost`` covers leases lost,
    cancelled or self-fenced and reports the coordinator refused or that were given up."""

    __slots__ = ("failed", "lost", "released", "skipped", "succeeded")

    def __init__(self, succeeded: int = 0, failed: int = 0, released: int = 0, lost: int = 0, skipped: int = 0) -> None:
        self.succeeded = succeeded
        self.failed = failed
        self.released = released
        self.lost = lost
        self.skipped = skipped  # robots.txt disallows their URL

    def __bool__(self) -> bool:
        return bool(self.succeeded or self.failed or self.released or self.lost or self.skipped)

    def __sub__(self, other: JobCounts) -> JobCounts:
        return JobCounts(
            self.succeeded - other.succeeded,
            self.failed - other.failed,
            self.released - other.released,
            self.lost - other.lost,
            self.skipped - other.skipped,
        )


class ProgressLog:
    """Logs the job outcomes of each interval, when anything happened.

    ``totals()`` gives the outcomes since the worker started (the worker's metrics count them);
    ``in_flight()`` the jobs held right now (running or with a report pending).
    """

    def __init__(
        self,
        in_flight: Callable[[], int],
        totals: Callable[[], JobCounts],
        *,
        interval: float = SUMMARY_INTERVAL,
        clock: Clock = time.monotonic,
    ) -> None:
        self._in_flight = in_flight
        self._totals = totals
        self._interval = interval
        self._clock = clock
        self._since = clock()
        self._logged = totals()

    async def run(self) -> None:
        """Logs a summary every interval, forever."""
        while True:
            await asyncio.sleep(self._interval)
            self.log_summary()

    def log_summary(self) -> None:
        """Logs the outcomes since the last summary, unless the worker was idle."""
        now, totals, in_flight = self._clock(), self._totals(), self._in_flight()
        counts = totals - self._logged
        if counts or in_flight:
            log.info(
                "jobs in the last %.1fs: %d succeeded, %d failed, %d skipped, %d released, %d lost; %d in flight",
                now - self._since,
                counts.succeeded,
                counts.failed,
                counts.skipped,
                counts.released,
                counts.lost,
                in_flight,
            )
        self._logged = totals
        self._since = now
