"""The retention flags: durations or keep, dead jobs following --retention unless told otherwise."""

from __future__ import annotations

import pytest

from crawlfleet.coordinator.retention import Retention
from crawlfleet.coordinator.settings import CoordinatorSettings


def retention_of(argv: list[str], env: dict[str, str] | None = None) -> Retention:
    return CoordinatorSettings.from_args(["serve", *argv], env or {})[1].retention


def test_finished_jobs_are_kept_by_default() -> None:
    retention = retention_of([])
    assert retention.finished_seconds is None and retention.dead_seconds is None
    assert not retention.enabled


def test_dead_jobs_follow_the_retention_unless_set() -> None:
    assert retention_of(["--retention", "30d"]).rules() == [
        (("succeeded", "cancelled", "skipped"), 30 * 86400.0),
        (("dead",), 30 * 86400.0),
    ]
    both = retention_of(["--retention", "1w", "--dead-retention", "keep"])
    assert (both.finished_seconds, both.dead_seconds) == (604800.0, None)
    only_dead = retention_of([], {"CRAWLFLEET_DEAD_RETENTION": "90d"})
    assert only_dead.rules() == [(("dead",), 90 * 86400.0)]


@pytest.mark.parametrize("value", ["30", "59m", "soon", "-1d"])
def test_limits_below_an_hour_or_not_durations_are_refused(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        retention_of(["--retention", value])
    assert "--retention" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        retention_of([], {"CRAWLFLEET_DEAD_RETENTION": value})
    assert "--dead-retention" in capsys.readouterr().err
