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
    """Job outcomes since the last summary; each job is counted once, by how it ended.

    ``lost`` covers leases lost, cancelled or self-fenced and reports the coordinator refused or
    that were given up.
    """

    __slots__ = ("failed", "lost", "released", "succeeded")

    def __init__(self) -> None:
        self.succeeded = 0
        self.failed = 0
        self.released = 0
        self.lost = 0

    def __bool__(self) -> bool:
        return bool(self.succeeded or self.failed or self.released or self.lost)


class ProgressLog:
    """Counts job outcomes and logs them every ``interval`` seconds when anything happened.

    ``in_flight()`` is the number of jobs held right now (running or with a report pending).
    """

    def __init__(
        self, in_flight: Callable[[], int], *, interval: float = SUMMARY_INTERVAL, clock: Clock = time.monotonic
    ) -> None:
        self.counts = JobCounts()
        self._in_flight = in_flight
        self._interval = interval
        self._clock = clock
        self._since = clock()

    async def run(self) -> None:
        """Logs a summary every interval, forever."""
        while True:
            await asyncio.sleep(self._interval)
            self.log_summary()

    def log_summary(self) -> None:
        """Logs the counts since the last summary and starts new ones, unless the worker was idle."""
        now = self._clock()
        counts, in_flight = self.counts, self._in_flight()
        if counts or in_flight:
            log.info(
                "jobs in the last %.1fs: %d succeeded, %d failed, %d released, %d lost; %d in flight",
                now - self._since,
                counts.succeeded,
                counts.failed,
                counts.released,
                counts.lost,
                in_flight,
            )
        self.counts = JobCounts()
        self._since = now
