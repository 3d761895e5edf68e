"""WatchJobs bookkeeping without a database: request validation, counts and message batching."""

from __future__ import annotations

import datetime as dt

import pytest

from crawlfleet.coordinator.api.watch import (
    MAX_JOBS_PER_RESPONSE,
    MAX_NOT_FOUND_PER_RESPONSE,
    MAX_RESPONSE_BYTES,
    WatchProgress,
    watch_target,
)
from crawlfleet.coordinator.errors import InvalidArgument
from crawlfleet.coordinator.storage.watch import WatchedJobRow
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def succeeded(job_id: int, *, seconds: int = 0, error: str | None = None) -> WatchedJobRow:
    return WatchedJobRow(job_id, "succeeded", 1, T0 + dt.timedelta(seconds=seconds), error)


def missing(job_id: int) -> WatchedJobRow:
    return WatchedJobRow(job_id, None, None, None, None)


def test_target_dedupes_and_sorts_ids() -> None:
    target = watch_target(pb.WatchJobsRequest(job_ids=[5, 3, 5, 9]))
    assert target.job_ids == (3, 5, 9) and not target.all_unfinished


def test_target_names_the_bad_id() -> None:
    with pytest.raises(InvalidArgument) as caught:
        watch_target(pb.WatchJobsRequest(job_ids=[1, 2, 0]))
    assert caught.value.field == "job_ids[2]"


def test_snapshot_always_answers_and_counts_only_found_jobs() -> None:
    progress = WatchProgress([1, 2, 3, 4])
    (first,) = progress.report([missing(4), succeeded(2)])
    assert list(first.not_found_job_ids) == [4]
    assert [job.job_id for job in first.jobs] == [2]
    assert (first.watched_count, first.remaining_count) == (3, 2)
    assert progress.pending == [1, 3]
    assert progress.report([]) == []  # later re-checks with nothing new send nothing

    (empty,) = WatchProgress([7]).report([])
    assert (empty.watched_count, empty.remaining_count, list(empty.jobs)) == (1, 1, [])


def test_jobs_come_in_finish_order_with_their_details() -> None:
    progress = WatchProgress([1, 2, 3])
    progress.report([])
    dead = WatchedJobRow(3, "dead", 5, T0, "http_503: down")
    (message,) = progress.report([succeeded(1, seconds=2), dead, succeeded(2, seconds=1)])
    assert [job.job_id for job in message.jobs] == [3, 2, 1]
    assert message.jobs[0] == pb.FinishedJob(
        job_id=3,
        state=jobs_pb2.JOB_STATE_DEAD,
        attempt=5,
        finished_at=message.jobs[0].finished_at,
        last_error="http_503: down",
    )
    assert message.jobs[0].finished_at.ToDatetime(dt.UTC) == T0
    assert message.remaining_count == 0


def test_a_burst_is_split_by_count_and_remaining_counts_down() -> None:
    count = MAX_JOBS_PER_RESPONSE * 2 + 500
    progress = WatchProgress(range(1, count + 1))
    messages = progress.report([succeeded(i) for i in range(1, count + 1)])
    assert [len(m.jobs) for m in messages] == [MAX_JOBS_PER_RESPONSE, MAX_JOBS_PER_RESPONSE, 500]
    assert [m.remaining_count for m in messages] == [count - MAX_JOBS_PER_RESPONSE, 500, 0]


def test_long_errors_split_messages_by_size() -> None:
    error = "x" * 4000
    progress = WatchProgress(range(1, 1001))
    progress.report([])
    messages = progress.report([succeeded(i, error=error) for i in range(1, 1001)])
    assert len(messages) > 1
    assert sum(len(m.jobs) for m in messages) == 1000
    assert all(m.ByteSize() <= MAX_RESPONSE_BYTES * 1.1 for m in messages)


def test_many_unknown_ids_are_split_and_jobs_deleted_later_count_as_reported() -> None:
    unknown = list(range(100, 100 + MAX_NOT_FOUND_PER_RESPONSE + 1))
    progress = WatchProgress([1, 2, *unknown])
    snapshot = progress.report([missing(i) for i in unknown])
    assert [len(m.not_found_job_ids) for m in snapshot] == [MAX_NOT_FOUND_PER_RESPONSE, 1]
    assert all((m.watched_count, m.remaining_count) == (2, 2) for m in snapshot)
    (later,) = progress.report([missing(1)])  # deleted while watched
    assert (list(later.not_found_job_ids), later.remaining_count) == ([1], 1)
