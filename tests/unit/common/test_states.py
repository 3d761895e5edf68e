"""Job states: the database's names, the protobuf enum, the terminal set."""

from __future__ import annotations

import pytest

from crawlfleet.common.states import STATE_NAMES, TERMINAL_STATE_NAMES, TERMINAL_STATES, JobState
from crawlfleet.v1 import jobs_pb2


def test_every_proto_state_has_a_member_and_back() -> None:
    values = [v for v in jobs_pb2.JobState.values() if v != jobs_pb2.JOB_STATE_UNSPECIFIED]
    assert sorted(JobState.from_proto(v).to_proto() for v in values) == sorted(values)
    assert {JobState.from_proto(v) for v in values} == set(JobState)


def test_names_match_the_proto_names() -> None:
    assert JobState.DEAD.to_proto() == jobs_pb2.JOB_STATE_DEAD
    assert JobState.from_proto(jobs_pb2.JOB_STATE_QUEUED) is JobState.QUEUED


@pytest.mark.parametrize("value", [jobs_pb2.JOB_STATE_UNSPECIFIED, 99, -1])
def test_unspecified_or_unknown_proto_values_are_refused(value: int) -> None:
    with pytest.raises(ValueError, match="not a job state"):
        JobState.from_proto(value)


def test_members_equal_the_database_strings() -> None:
    assert STATE_NAMES == ("queued", "leased", "succeeded", "dead", "cancelled", "skipped")
    from_database: str = "dead"
    assert from_database == JobState.DEAD and {"dead": 1}.get(JobState.DEAD) == 1
    assert f"{JobState.LEASED}" == "leased"


def test_terminal_states() -> None:
    assert {JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED, JobState.SKIPPED} == TERMINAL_STATES
    assert TERMINAL_STATE_NAMES == ("succeeded", "dead", "cancelled", "skipped")
    assert not JobState.QUEUED.is_terminal and not JobState.LEASED.is_terminal


def test_parse() -> None:
    assert JobState.parse(" Dead ") is JobState.DEAD
    with pytest.raises(ValueError, match="expected one of queued, leased, succeeded, dead, cancelled, skipped"):
        JobState.parse("stuck")
