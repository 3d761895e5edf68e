"""Dashboard flags and variables, and how values read on its pages."""

from __future__ import annotations

import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from crawlfleet.dashboard import present
from crawlfleet.dashboard.gateway import DashboardError
from crawlfleet.dashboard.settings import settings_from_args
from crawlfleet.dashboard.web import int_param
from crawlfleet.v1 import jobs_pb2


def test_flags_and_variables() -> None:
    settings = settings_from_args(
        ["--coordinators", "a:1, b:2", "--anonymous"],
        {"CRAWLFLEET_DASHBOARD_LISTEN": "0.0.0.0:9000", "CRAWLFLEET_TOKEN": "x"},
    )
    assert settings.coordinators == ("a:1", "b:2")
    assert settings.anonymous and settings.host_port == ("0.0.0.0", 9000)
    assert settings.security.token is None  # each user's own token is sent, never the process's


def test_the_coordinators_listen_variable_is_not_the_dashboards() -> None:
    settings = settings_from_args([], {"CRAWLFLEET_LISTEN": "0.0.0.0:50051"})
    assert settings.host_port == ("127.0.0.1", 8470)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--listen", "nowhere"], "expected HOST:PORT"),
        (["--https-cert", "c.pem"], "--https-cert and --https-key go together"),
        (["--refresh", "0"], "must be positive"),
    ],
)
def test_bad_flags_are_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        settings_from_args(argv, {})
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_query_numbers_are_checked_and_named() -> None:
    assert int_param({}, "page_size", default=50, low=1, high=1000) == 50
    assert int_param({"page_size": "10"}, "page_size", default=50, low=1, high=1000) == 10
    for text, reason in (("ten", "not a whole number"), ("0", "between 1 and 1000")):
        with pytest.raises(DashboardError) as error:
            int_param({"page_size": text}, "page_size", default=50, low=1, high=1000)
        assert error.value.status == 400 and error.value.message.startswith("page_size: ")
        assert reason in error.value.message


def test_values_read_as_people_write_them() -> None:
    assert present.when(timestamp_pb2.Timestamp()) == present.NOTHING
    assert present.when(timestamp_pb2.Timestamp(seconds=1_796_300_000)) == "2026-12-03 12:13:20Z"
    assert present.duration(duration_pb2.Duration(nanos=250_000_000)) == "250 ms"
    assert present.duration(duration_pb2.Duration(seconds=185)) == "3 min 5 s"
    assert present.job_state(jobs_pb2.JOB_STATE_DEAD) == "dead"
    assert present.job_state(99) == "99"  # a state newer than this dashboard
    assert present.byte_size(2560) == "2.5 KiB"
    assert present.pretty_json('{"a":1}') == '{\n  "a": 1\n}'
    assert present.pretty_json("not json") == "not json"
    assert present.percent(3, 0) == 0.0 and present.percent(1, 4) == 25.0
