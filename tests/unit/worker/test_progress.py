from __future__ import annotations

import logging

import pytest

from crawlfleet.common.logs import job_log
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.worker.progress import JobCounts, ProgressLog


def test_summary_counts_the_interval_then_starts_over(caplog: pytest.LogCaptureFixture) -> None:
    now, in_flight = [100.0], [3]
    totals = JobCounts(succeeded=4)  # before the log started: never reported
    progress = ProgressLog(
        lambda: in_flight[0],
        lambda: JobCounts(totals.succeeded, totals.failed, 0, totals.lost),
        interval=10.0,
        clock=lambda: now[0],
    )
    totals.succeeded += 5
    totals.failed += 1
    totals.lost += 2
    now[0] = 110.0
    with caplog.at_level(logging.INFO, logger="crawlfleet.worker.progress"):
        progress.log_summary()
        in_flight[0] = 0
        now[0] = 120.0
        progress.log_summary()  # idle: nothing to say
    assert [record.getMessage() for record in caplog.records] == [
        "jobs in the last 10.0s: 5 succeeded, 1 failed, 0 skipped, 0 released, 2 lost; 3 in flight"
    ]


def test_job_log_adds_the_job_context_to_emitted_records(caplog: pytest.LogCaptureFixture) -> None:
    job = pb.LeasedJob(id=7, kind="noop", lease_token="0123456789abcdef", attempt=2)
    jlog = job_log(logging.getLogger("t.job"), job)
    with caplog.at_level(logging.INFO, logger="t.job"):
        jlog.debug("not emitted %s", "x")
        jlog.info("emitted %s", "y")
    [record] = caplog.records
    assert record.getMessage() == "emitted y"
    context = (record.job_id, record.kind, record.attempt, record.lease)  # type: ignore[attr-defined]
    assert context == (7, "noop", 2, "01234567")
