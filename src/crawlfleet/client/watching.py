"""One watch of many jobs across as many streams as it takes.

``JobQueue.WatchJobs`` streams watched jobs as they finish. A coordinator that drains ends the
stream with UNAVAILABLE, and connections drop; the watch then opens a new stream for the ids still
unfinished (jobs that finished in between come in its first message), after a jittered backoff.
More ids than one stream takes are watched a slice at a time. Both clients drive this state with
their own calls and sleeps.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable

import grpc

from crawlfleet.client.errors import DeadlineExceeded, ResourceExhausted, Unavailable, WaitTimeout, from_rpc_error
from crawlfleet.client.models import JobOutcome, WatchUpdate
from crawlfleet.v1 import job_queue_pb2

MAX_WATCH_IDS = 100_000  # the coordinator's limit per WatchJobs call
# A watch gives up after this long without a stream that delivers (a coordinator down for good).
DEFAULT_RECONNECT_FOR = 120.0
RECONNECT_INITIAL = 0.1
RECONNECT_CAP = 5.0
# Codes that end a stream that was up for reasons other than the request: a drain, a dropped
# connection, a coordinator stopped without grace.
_DROPPED = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL})

# The coordinator's limit named in RESOURCE_EXHAUSTED when it serves as many streams as it may.
STREAMS_LIMIT = "max_watch_streams"

Clock = Callable[[], float]


class WatchSession:
    """The state of one ``watch``: what is still unfinished, what finished how, when to give up.

    With job ids, the ids still unfinished are known here and a new stream asks for exactly those.
    With ``all_unfinished`` the coordinator picks the jobs (those queued or leased when the stream
    opens), so a new stream after a drop watches what is unfinished then: a job that finished while
    no stream was open is not reported.
    """

    def __init__(
        self,
        job_ids: Iterable[int],
        *,
        all_unfinished: bool = False,
        timeout: float | None = None,
        reconnect_for: float = DEFAULT_RECONNECT_FOR,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._pending = set(job_ids)
        if all_unfinished and len(self._pending) > MAX_WATCH_IDS:
            raise ValueError(f"with all_unfinished, at most {MAX_WATCH_IDS} job ids")
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must not be negative, not {timeout}")
        self.outcomes: dict[int, JobOutcome] = {}
        self._all = all_unfinished
        self._ids_watched = len(self._pending)
        self._not_found: set[int] = set()
        self._timeout = timeout
        self._clock = clock
        self._deadline = None if timeout is None else clock() + timeout
        self._reconnect_for = reconnect_for
        self._rng = rng or random.Random()
        self._done = not self._pending and not all_unfinished
        # Whether any stream delivered: before that, an unreachable coordinator is an error at once.
        self._reached = False
        self._failing_since: float | None = None
        self._failures = 0
        # With all_unfinished: the coordinator's counts of the current stream.
        self._server_remaining = 0
        self._server_watched = 0
        self._finished_before_stream = 0
        self._first_message = True

    @property
    def done(self) -> bool:
        """Every watched job finished (or was not found)."""
        return self._done

    @property
    def remaining(self) -> int:
        return self._server_remaining if self._all else len(self._pending)

    @property
    def pending(self) -> frozenset[int]:
        """The ids watched and not finished yet (empty when the coordinator picked the jobs)."""
        return frozenset(self._pending)

    def open_stream(self) -> tuple[job_queue_pb2.WatchJobsRequest, float | None]:
        """The request of the next stream and its deadline in seconds (None: no deadline).

        Raises ``WaitTimeout`` when the watch's time is up.
        """
        timeout = self._time_left()
        self._first_message = True
        self._finished_before_stream = len(self.outcomes)
        ids = sorted(self._pending)
        if not self._all:
            ids = ids[:MAX_WATCH_IDS]
        return job_queue_pb2.WatchJobsRequest(job_ids=ids, all_unfinished=self._all), timeout

    def absorb(self, response: job_queue_pb2.WatchJobsResponse) -> WatchUpdate:
        """Records one message of the stream; the update to hand to the caller."""
        self._reached = True
        self._failing_since = None
        self._failures = 0
        finished = tuple(JobOutcome.from_proto(j) for j in response.jobs if j.job_id not in self.outcomes)
        for outcome in finished:
            self.outcomes[outcome.job_id] = outcome
            self._pending.discard(outcome.job_id)
        not_found = tuple(sorted(set(response.not_found_job_ids) - self._not_found))
        self._not_found.update(not_found)
        self._pending.difference_update(not_found)
        if self._first_message:
            self._server_watched = response.watched_count
            self._first_message = False
        self._server_remaining = response.remaining_count
        self._done = response.remaining_count == 0 if self._all else not self._pending
        if self._all:
            watched = self._finished_before_stream + self._server_watched
        else:
            watched = self._ids_watched - len(self._not_found)
        return WatchUpdate(finished=finished, not_found=not_found, remaining=self.remaining, watched=watched)

    def stream_ended(self) -> float:
        """The stream ended without error; how long to wait before the next one (if not done).

        Without a pause when the next slice of a long list of ids is due; with backoff otherwise (the
        coordinator ended the stream early, which it should not).
        """
        if self._done or (not self._all and self._server_remaining == 0):
            return 0.0
        return self._backoff(Unavailable("the coordinator ended the watch early"))

    def retry_delay(self, error: grpc.RpcError) -> float:
        """How long to wait before watching again after a stream failed with ``error``.

        Raises what the caller should see instead when watching again would not help: the
        translated error, or ``WaitTimeout`` when the watch's deadline passed.
        """
        translated = from_rpc_error(error)
        if isinstance(translated, DeadlineExceeded) and self._deadline is not None:
            raise self.timed_out() from error
        dropped = translated.code in _DROPPED and (self._reached or translated.answered)
        # A coordinator at its limit of open streams: another (or this one) takes the watch later.
        busy = isinstance(translated, ResourceExhausted) and translated.metadata.get("limit") == STREAMS_LIMIT
        if not (dropped or busy):
            raise translated from error
        return self._backoff(translated)

    def timed_out(self) -> WaitTimeout:
        return WaitTimeout(self._timeout or 0.0, self.outcomes, self._pending, remaining=self.remaining)

    def _backoff(self, error: Exception) -> float:
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        elif now - self._failing_since > self._reconnect_for:
            raise error
        bound = min(RECONNECT_CAP, RECONNECT_INITIAL * 2 ** min(self._failures, 32))
        self._failures += 1
        delay = self._rng.uniform(0, bound)
        if self._deadline is not None:
            delay = min(delay, max(0.0, self._deadline - now))
        return delay

    def _time_left(self) -> float | None:
        if self._deadline is None:
            return None
        left = self._deadline - self._clock()
        if left <= 0:
            raise self.timed_out()
        return left
