"""When the coordinator analyzes the jobs table: after enough enqueued jobs, at most once per interval."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from crawlfleet.coordinator.statistics import ANALYZE_AFTER_JOBS, ANALYZE_MIN_INTERVAL_SECONDS, JobStatistics


class CountingQueue:
    def __init__(self) -> None:
        self.analyzed = 0

    async def analyze(self) -> None:
        self.analyzed += 1


async def test_analyzes_after_enough_jobs_and_at_most_once_per_interval() -> None:
    queue, now = CountingQueue(), [0.0]
    statistics = JobStatistics(cast(Any, queue), clock=lambda: now[0])
    statistics.enqueued(ANALYZE_AFTER_JOBS - 1)
    statistics.enqueued(1)
    await asyncio.sleep(0)  # let the background task run
    assert queue.analyzed == 1
    statistics.enqueued(ANALYZE_AFTER_JOBS)  # too soon after the last run
    await asyncio.sleep(0)
    assert queue.analyzed == 1
    now[0] += ANALYZE_MIN_INTERVAL_SECONDS
    statistics.enqueued(1)
    await asyncio.sleep(0)
    assert queue.analyzed == 2
    await statistics.close()
