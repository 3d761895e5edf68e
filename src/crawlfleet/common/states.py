"""The states of a job, once for every program.

The values are the database's ``job_state`` labels (and what people type and read: ``dead``); each
state converts to and from ``crawlfleet.v1.JobState`` (``JOB_STATE_DEAD``). ``JobState`` is a
``StrEnum``, so a member equals its database string: ``row["state"] == JobState.DEAD``.
"""

from __future__ import annotations

from enum import StrEnum

from crawlfleet.v1 import jobs_pb2

PROTO_PREFIX = "JOB_STATE_"


class JobState(StrEnum):
    """Where a job is in its lifecycle (docs/queue-semantics.md), in lifecycle order."""

    QUEUED = "queued"  # waiting to be leased, including waiting for a retry at run_at
    LEASED = "leased"
    SUCCEEDED = "succeeded"
    DEAD = "dead"  # retries exhausted or not retryable
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # robots.txt disallows its URL: not fetched, and not an error

    @property
    def is_terminal(self) -> bool:
        """Whether the job is finished: it changes state again only if requeued from dead."""
        return self in TERMINAL_STATES

    def to_proto(self) -> jobs_pb2.JobState.ValueType:
        """``JobState.DEAD`` -> ``JOB_STATE_DEAD``."""
        return jobs_pb2.JobState.Value(PROTO_PREFIX + self.name)

    @classmethod
    def from_proto(cls, value: int) -> JobState:
        """``JOB_STATE_DEAD`` -> ``JobState.DEAD``; raises ``ValueError`` for UNSPECIFIED or an unknown value."""
        if value == jobs_pb2.JOB_STATE_UNSPECIFIED or value not in jobs_pb2.JobState.values():
            raise ValueError(f"not a job state: {value}")
        return cls[jobs_pb2.JobState.Name(jobs_pb2.JobState.ValueType(value)).removeprefix(PROTO_PREFIX)]

    @classmethod
    def parse(cls, name: str) -> JobState:
        """The state called ``name`` (any case); raises ``ValueError`` naming the states otherwise."""
        try:
            return cls(name.strip().lower())
        except ValueError:
            raise ValueError(f"unknown state {name!r}; expected one of {', '.join(STATE_NAMES)}") from None


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED, JobState.SKIPPED})
# Plain strings in lifecycle order, for tables, metric labels and query parameters.
STATE_NAMES: tuple[str, ...] = tuple(state.value for state in JobState)
TERMINAL_STATE_NAMES: tuple[str, ...] = tuple(state.value for state in JobState if state.is_terminal)
