"""The CLI's global options, before or after the command, from flags and ``CRAWLFLEET_*`` variables."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from crawlfleet.cli.settings import CliSettings, add_global_options, settings_from
from crawlfleet.common.channel import ChannelSecurity


def parser_with(env: dict[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crawlfleet")
    add_global_options(parser, env)
    command = parser.add_subparsers(dest="command").add_parser("stats")
    add_global_options(command, env, repeated=True)
    return parser


def settings(argv: list[str], env: dict[str, str] | None = None) -> CliSettings:
    parser = parser_with(env or {})
    return settings_from(parser.parse_args(argv), parser)


def test_defaults() -> None:
    assert settings(["stats"]) == CliSettings()


def test_env_then_options_before_or_after_the_command(tmp_path: Path) -> None:
    env = {"CRAWLFLEET_TOKEN": "t-env", "CRAWLFLEET_JSON": "1", "CRAWLFLEET_TLS_CA": str(tmp_path / "ca.pem")}
    from_env = settings(["stats"], env)
    assert from_env.security == ChannelSecurity(token="t-env", tls_ca=tmp_path / "ca.pem")
    assert from_env.json and from_env.uses_tls and from_env.token == "t-env"
    after = settings(["stats", "--no-json", "--call-timeout", "5", "--coordinator", "c:1"], env)
    assert (after.json, after.call_timeout, after.coordinator) == (False, 5.0, "c:1")
    assert settings(["--json", "stats"]).json


@pytest.mark.parametrize(
    "argv", [["--call-timeout", "0", "stats"], ["stats", "--tls-cert", "c.pem"], ["--token", "a b", "stats"]]
)
def test_bad_options_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc_info:
        settings(argv)
    assert exc_info.value.code == 2


def test_help_never_shows_the_token() -> None:
    text = parser_with({"CRAWLFLEET_TOKEN": "hunter2"}).format_help()
    assert "CRAWLFLEET_TOKEN" in text and "hunter2" not in text
