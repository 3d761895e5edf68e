"""What the library hands back: small typed values built from the coordinator's answers.

Jobs, results and workers are returned as the API's own messages (``crawlfleet.v1.jobs_pb2.Job``
and friends, typed by their stubs); the values here are the ones the library itself assembles.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from google.protobuf import timestamp_pb2

from crawlfleet.common.states import STATE_NAMES, JobState
from crawlfleet.v1 import admin_pb2, job_queue_pb2, jobs_pb2


def state_values(states: Iterable[JobState | str]) -> list[jobs_pb2.JobState.ValueType]:
    """The API values of states given as ``JobState``s or names (``"dead"``); ``ValueError`` for others."""
    if isinstance(states, str):
        raise TypeError("states is a sequence of states, e.g. states=['dead']")
    return [JobState.parse(state).to_proto() for state in states]


class EnqueuedJob(NamedTuple):
    """One job of an enqueue: its id; ``created`` False when it deduplicated onto a live job that
    existed, and then ``existing_spec_differs`` True when that job keeps other options than the ones
    given (another render mode, priority, retry policy)."""

    id: int
    created: bool
    existing_spec_differs: bool = False


@dataclass(frozen=True, kw_only=True)
class JobOutcome:
    """How a watched job ended: SUCCEEDED, DEAD, CANCELLED or SKIPPED."""

    job_id: int
    # SUCCEEDED, DEAD, CANCELLED or SKIPPED (a StrEnum: it equals "succeeded", "dead", ...).
    state: JobState
    # Attempts made, the last one included (0 for a job cancelled before its first lease).
    attempt: int
    finished_at: dt.datetime | None
    # The error of the last failed attempt; empty when there was none.
    last_error: str

    @property
    def succeeded(self) -> bool:
        return self.state is JobState.SUCCEEDED

    @property
    def failed(self) -> bool:
        """Dead or cancelled. A skipped job (robots.txt disallows its URL) did not fail: it ran as
        the fleet's politeness asks."""
        return self.state in (JobState.DEAD, JobState.CANCELLED)

    @classmethod
    def from_proto(cls, job: job_queue_pb2.FinishedJob) -> JobOutcome:
        return cls(
            job_id=job.job_id,
            state=JobState.from_proto(job.state),
            attempt=job.attempt,
            finished_at=to_datetime(job.finished_at) if job.HasField("finished_at") else None,
            last_error=job.last_error,
        )


@dataclass(frozen=True, kw_only=True)
class WatchUpdate:
    """One step of ``watch``: the jobs that finished since the last update, and how many are left."""

    finished: tuple[JobOutcome, ...]
    # Ids watched that match no job (normally reported in the first update).
    not_found: tuple[int, ...]
    # Watched jobs not finished yet; the watch ends after the update where it reaches 0.
    remaining: int
    # Jobs watched in all (the ids found, or the jobs unfinished when watching all).
    watched: int


class JobPage(NamedTuple):
    """One page of ``list_jobs``; pass ``next_page_token`` for the next (empty: no more)."""

    jobs: list[jobs_pb2.Job]
    next_page_token: str


class ResultPage(NamedTuple):
    """One page of ``list_results``; pass ``next_page_token`` for the next (empty: no more right now)."""

    results: list[admin_pb2.ResultEntry]
    next_page_token: str


class HostPage(NamedTuple):
    """One page of ``list_hosts``, in host order; pass ``next_page_token`` for the next (empty: no more)."""

    hosts: list[admin_pb2.Host]
    next_page_token: str


class HostPolicyPage(NamedTuple):
    """One page of ``list_host_policies``, in pattern order; pass ``next_page_token`` for the next."""

    policies: list[admin_pb2.HostPolicy]
    next_page_token: str


class HostPolicyChange(NamedTuple):
    """A policy set (``hosts``: the known hosts it now governs) or cleared (``hosts``: those it
    governed, now under the next most specific policy or the fleet defaults)."""

    policy: admin_pb2.HostPolicy
    hosts: int


@dataclass(frozen=True, kw_only=True)
class QueueStats:
    """Jobs by state (every state, 0 when none), and by kind and state."""

    states: Mapping[str, int]
    kinds: Mapping[str, Mapping[str, int]]

    @property
    def unfinished(self) -> int:
        """Jobs queued or leased."""
        return self.states["queued"] + self.states["leased"]

    @classmethod
    def from_proto(cls, stats: admin_pb2.GetQueueStatsResponse) -> QueueStats:
        states = dict.fromkeys(STATE_NAMES, 0)
        states.update({JobState.from_proto(s.state).value: s.count for s in stats.states})
        kinds: dict[str, dict[str, int]] = {}
        for k in stats.kinds:
            kinds.setdefault(k.kind, dict.fromkeys(STATE_NAMES, 0))[JobState.from_proto(k.state).value] = k.count
        return cls(states=states, kinds=kinds)


class PurgeCounts(NamedTuple):
    """What a purge deleted: jobs, and images no page refers to any more."""

    jobs: int
    images: int


def to_datetime(ts: timestamp_pb2.Timestamp) -> dt.datetime:
    """A timestamp as an aware UTC datetime."""
    return ts.ToDatetime(tzinfo=dt.UTC)


# A declared field's value in field_values: its value (None when nothing matched), or the list of
# its values for a field declared with ``all``.
FieldValue = str | list[str] | None


def field_values(spec: jobs_pb2.JobSpec, result: jobs_pb2.JobResult) -> dict[str, FieldValue]:
    """The declared fields of a scrape job's result by name, in the order declared: a field
    declared with ``all`` as the list of its values, any other as its value or None. ``spec`` and
    ``result`` are a ``Job``'s or a ``ResultEntry``'s."""
    found = {field.name: list(field.values) for field in result.scrape.fields}
    values: dict[str, FieldValue] = {}
    for declared in spec.scrape.fields:
        got = found.pop(declared.name, [])
        values[declared.name] = got if declared.all else (got[0] if got else None)
    values.update(found)  # reported but not declared (not from a worker of this version): as lists
    return values
