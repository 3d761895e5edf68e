"""The ``--metrics-listen`` address."""

from __future__ import annotations

import argparse

import pytest

from crawlfleet.common.flags import EnvFlags
from crawlfleet.common.metrics_http import add_metrics_listen_flag, parse_listen


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9465", ("127.0.0.1", 9465)),
        ("[::1]:0", ("::1", 0)),
        (":9465", ("127.0.0.1", 9465)),  # no host: loopback, never every interface
        ("0.0.0.0:9465", ("0.0.0.0", 9465)),
        ("off", None),
        ("OFF", None),
        ("", None),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int] | None) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["9465", "host:", "host:http", "host:70000"])
def test_parse_listen_refuses_what_is_not_host_port(listen: str) -> None:
    with pytest.raises(ValueError, match="not host:port"):
        parse_listen(listen)


def test_flag_help_says_a_bare_port_is_loopback() -> None:
    parser = argparse.ArgumentParser()
    add_metrics_listen_flag(EnvFlags(parser, {}), "127.0.0.1:9464")
    assert "a bare :port binds loopback only" in " ".join(parser.format_help().split())


def test_flag_reads_its_variable() -> None:
    parser = argparse.ArgumentParser()
    add_metrics_listen_flag(EnvFlags(parser, {"CRAWLFLEET_METRICS_LISTEN": "off"}), "127.0.0.1:9464")
    assert parser.parse_args([]).metrics_listen == "off"
    assert "default: 'off' from CRAWLFLEET_METRICS_LISTEN" in " ".join(parser.format_help().split())
