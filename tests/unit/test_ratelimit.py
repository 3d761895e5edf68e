"""Rate-limited log lines: what a client can trigger in a loop cannot flood the log."""

from __future__ import annotations

import logging

import pytest

from crawlfleet.common.ratelimit import RateLimitedLog


def test_lines_beyond_the_window_budget_are_counted_not_written(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("t.refusals"), lines=3, window=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="t.refusals"):
        for i in range(100):
            limited.log(logging.INFO, "refused call %d", i)
        assert [r.getMessage() for r in caplog.records] == ["refused call 0", "refused call 1", "refused call 2"]
        now[0] = 10.0
        limited.log(logging.INFO, "refused call %d", 100)
    assert [r.getMessage() for r in caplog.records][3:] == [
        "97 similar line(s) suppressed in the last 10s",
        "refused call 100",
    ]
