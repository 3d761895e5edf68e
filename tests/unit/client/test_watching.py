"""A watch across streams: what each new stream asks for, when it reconnects, when it gives up."""

from __future__ import annotations

import random

import grpc
import pytest

from crawlfleet.client import (
    JobOutcome,
    JobState,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
    WaitTimeout,
    WatchUpdate,
    watching,
)
from crawlfleet.client.watching import WatchSession
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from tests.unit.client.rpc import rpc_error

SUCCEEDED = jobs_pb2.JOB_STATE_SUCCEEDED
DEAD = jobs_pb2.JOB_STATE_DEAD


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def finished(job_id: int, state: jobs_pb2.JobState.ValueType = SUCCEEDED, error: str = "") -> pb.FinishedJob:
    """A finished job as the stream reports it (states are the API's values here)."""
    return pb.FinishedJob(job_id=job_id, state=state, attempt=1, last_error=error)


def message(
    *jobs: pb.FinishedJob, remaining: int, watched: int, not_found: tuple[int, ...] = ()
) -> pb.WatchJobsResponse:
    return pb.WatchJobsResponse(
        jobs=jobs, not_found_job_ids=not_found, remaining_count=remaining, watched_count=watched
    )


def session(ids: list[int], clock: Clock, **kwargs: object) -> WatchSession:
    return WatchSession(ids, clock=clock, rng=random.Random(7), **kwargs)  # type: ignore[arg-type]


def test_updates_count_what_finished_and_what_remains() -> None:
    clock = Clock()
    watch = session([1, 2, 3, 4], clock)
    request, deadline = watch.open_stream()
    assert list(request.job_ids) == [1, 2, 3, 4] and not request.all_unfinished and deadline is None
    first = watch.absorb(message(finished(1), remaining=2, watched=3, not_found=(4,)))
    assert first.not_found == (4,) and [o.job_id for o in first.finished] == [1]
    assert (first.remaining, first.watched) == (2, 3) and not watch.done
    last = watch.absorb(message(finished(2), finished(3, DEAD, "http_4xx: HTTP 404"), remaining=0, watched=3))
    assert last == WatchUpdate(
        finished=(
            JobOutcome(job_id=2, state=JobState.SUCCEEDED, attempt=1, finished_at=None, last_error=""),
            JobOutcome(job_id=3, state=JobState.DEAD, attempt=1, finished_at=None, last_error="http_4xx: HTTP 404"),
        ),
        not_found=(),
        remaining=0,
        watched=3,
    )
    assert watch.done and watch.outcomes[3].state is JobState.DEAD and not watch.outcomes[3].succeeded


def test_a_dropped_stream_resumes_with_the_ids_still_unfinished() -> None:
    clock = Clock()
    watch = session([1, 2, 3], clock)
    watch.open_stream()
    watch.absorb(message(finished(2), remaining=2, watched=3))
    drained = rpc_error(grpc.StatusCode.UNAVAILABLE, "the coordinator is shutting down", "DRAINING")
    delay = watch.retry_delay(drained)
    assert 0 <= delay <= watching.RECONNECT_INITIAL
    request, _ = watch.open_stream()
    assert list(request.job_ids) == [1, 3]
    # A job that finished while no stream was open comes in the new stream's first message.
    update = watch.absorb(message(finished(1), remaining=1, watched=2))
    assert [o.job_id for o in update.finished] == [1] and update.remaining == 1 and update.watched == 3


def test_a_coordinator_never_reached_is_an_error_at_once() -> None:
    watch = session([1], Clock())
    watch.open_stream()
    with pytest.raises(Unavailable) as caught:
        watch.retry_delay(rpc_error(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"))
    assert not caught.value.answered


def test_a_draining_coordinator_is_retried_even_before_any_message() -> None:
    watch = session([1], Clock())
    watch.open_stream()
    assert watch.retry_delay(rpc_error(grpc.StatusCode.UNAVAILABLE, "draining", "DRAINING")) >= 0


def test_requests_the_coordinator_refuses_are_not_retried() -> None:
    watch = session([1], Clock())
    watch.open_stream()
    watch.absorb(message(remaining=1, watched=1))
    with pytest.raises(PermissionDenied):
        watch.retry_delay(rpc_error(grpc.StatusCode.PERMISSION_DENIED, "producer only", "PERMISSION_DENIED"))


def test_a_coordinator_at_its_stream_limit_is_tried_again_but_not_a_watch_too_large() -> None:
    watch = session([1], Clock())
    watch.open_stream()
    busy = rpc_error(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "100 streams open", "RESOURCE_EXHAUSTED", limit="max_watch_streams"
    )
    assert watch.retry_delay(busy) >= 0
    everything = session([], Clock(), all_unfinished=True)
    everything.open_stream()
    too_many = rpc_error(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "2000000 unfinished", "RESOURCE_EXHAUSTED", limit="max_watch_unfinished"
    )
    with pytest.raises(ResourceExhausted):
        everything.retry_delay(too_many)


def test_reconnects_back_off_and_give_up_after_the_window() -> None:
    clock = Clock()
    watch = session([1], clock, reconnect_for=10.0)
    watch.open_stream()
    watch.absorb(message(remaining=1, watched=1))
    dropped = rpc_error(grpc.StatusCode.UNAVAILABLE, "Socket closed")
    for failures in range(8):
        assert watch.retry_delay(dropped) <= min(watching.RECONNECT_CAP, watching.RECONNECT_INITIAL * 2**failures)
        clock.now += 1.0
    clock.now += 5.0
    with pytest.raises(Unavailable):
        watch.retry_delay(dropped)
    # A message in between starts the window afresh.
    again = session([1], clock, reconnect_for=10.0)
    again.open_stream()
    again.absorb(message(remaining=1, watched=1))
    again.retry_delay(dropped)
    clock.now += 9.0
    again.absorb(message(remaining=1, watched=1))
    clock.now += 9.0
    assert again.retry_delay(dropped) <= watching.RECONNECT_INITIAL


def test_the_deadline_turns_into_wait_timeout_with_what_finished() -> None:
    clock = Clock()
    watch = session([1, 2], clock, timeout=30.0)
    _, deadline = watch.open_stream()
    assert deadline == 30.0
    watch.absorb(message(finished(1), remaining=1, watched=2))
    with pytest.raises(WaitTimeout) as caught:
        watch.retry_delay(rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))
    assert list(caught.value.finished) == [1] and caught.value.unfinished == (2,) and caught.value.remaining == 1
    clock.now += 31
    with pytest.raises(WaitTimeout):
        watch.open_stream()


def test_a_reconnect_never_sleeps_past_the_deadline() -> None:
    clock = Clock()
    watch = session([1], clock, timeout=1.0)
    watch.open_stream()
    watch.absorb(message(remaining=1, watched=1))
    clock.now += 0.99
    dropped = rpc_error(grpc.StatusCode.UNAVAILABLE, "Socket closed")
    for _ in range(10):
        assert watch.retry_delay(dropped) <= 0.01 + 1e-9


def test_more_ids_than_one_stream_takes_are_watched_a_slice_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watching, "MAX_WATCH_IDS", 2)
    watch = session([5, 1, 4, 2, 3], Clock())
    request, _ = watch.open_stream()
    assert list(request.job_ids) == [1, 2]
    update = watch.absorb(message(finished(1), finished(2), remaining=0, watched=2))
    assert update.remaining == 3 and update.watched == 5 and not watch.done
    assert watch.stream_ended() == 0.0
    request, _ = watch.open_stream()
    assert list(request.job_ids) == [3, 4]


def test_watching_all_unfinished_counts_what_the_coordinator_picked() -> None:
    watch = session([], Clock(), all_unfinished=True)
    request, _ = watch.open_stream()
    assert request.all_unfinished and not request.job_ids
    update = watch.absorb(message(remaining=3, watched=3))
    assert (update.remaining, update.watched) == (3, 3)
    watch.absorb(message(finished(8), remaining=2, watched=3))
    watch.retry_delay(rpc_error(grpc.StatusCode.UNAVAILABLE, "Socket closed"))
    request, _ = watch.open_stream()
    assert request.all_unfinished
    # The new stream watches what is unfinished now: one finished before, two still going, one new.
    resumed = watch.absorb(message(remaining=3, watched=3))
    assert (resumed.remaining, resumed.watched) == (3, 4)
    watch.absorb(message(finished(9), finished(10), finished(11), remaining=0, watched=3))
    assert watch.done


def test_nothing_to_watch_is_done_at_once() -> None:
    assert session([], Clock()).done
