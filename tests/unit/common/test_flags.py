"""Flags that read ``CRAWLFLEET_*`` variables, and what ``--help`` says about them."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from crawlfleet.common.flags import (
    EnvFlags,
    comma_list,
    env_name,
    non_negative_float,
    non_negative_int,
    parse_bool,
    positive_float,
    positive_int,
    show_default,
)


def parser_with(env: dict[str, str], *, repeated: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prog")
    flags = EnvFlags(parser, env, repeated=repeated)
    flags.add("--slots", 8, "jobs at once", type=int)
    flags.add("--lease-wait", 10.0, "long-poll wait, seconds", type=float)
    flags.add("--database-url", None, "PostgreSQL DSN", aliases=("DATABASE_URL",))
    flags.add("--secret", None, "a secret", secret=True)
    flags.add_switch("--tls", False, "use TLS")
    flags.add_switch("--no-migrate", False, "skip migrations", negatable=False)
    return parser


def test_env_name() -> None:
    assert env_name("--tls-ca") == "CRAWLFLEET_TLS_CA"
    assert env_name("--metrics-listen") == "CRAWLFLEET_METRICS_LISTEN"


def test_defaults_then_env_then_flags() -> None:
    ns = parser_with({}).parse_args([])
    assert (ns.slots, ns.lease_wait, ns.database_url, ns.tls, ns.no_migrate) == (8, 10.0, None, False, False)
    env = {"CRAWLFLEET_SLOTS": "3", "CRAWLFLEET_TLS": "on", "CRAWLFLEET_NO_MIGRATE": "yes"}
    ns = parser_with(env).parse_args([])
    assert (ns.slots, ns.tls, ns.no_migrate) == (3, True, True)  # env strings go through the flag's type
    ns = parser_with(env).parse_args(["--slots", "5", "--no-tls"])
    assert (ns.slots, ns.tls) == (5, False)


def test_aliases_are_read_before_the_prefixed_variable() -> None:
    env = {"DATABASE_URL": "postgres://a", "CRAWLFLEET_DATABASE_URL": "postgres://b"}
    assert parser_with(env).parse_args([]).database_url == "postgres://a"
    assert parser_with({"CRAWLFLEET_DATABASE_URL": "postgres://b"}).parse_args([]).database_url == "postgres://b"


def test_bad_env_values_fail_like_bad_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser_with({"CRAWLFLEET_SLOTS": "many"}).parse_args([])
    assert "--slots: invalid int value: 'many'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser_with({"CRAWLFLEET_TLS": "maybe"}).parse_args([])
    assert "CRAWLFLEET_TLS: not a boolean" in capsys.readouterr().err


def test_help_shows_defaults_and_variables() -> None:
    text = " ".join(parser_with({"CRAWLFLEET_LEASE_WAIT": "2.5", "CRAWLFLEET_SECRET": "hunter2"}).format_help().split())
    assert "jobs at once (default: 8; env CRAWLFLEET_SLOTS)" in text
    assert "long-poll wait, seconds (default: '2.5' from CRAWLFLEET_LEASE_WAIT)" in text
    assert "PostgreSQL DSN (env DATABASE_URL or CRAWLFLEET_DATABASE_URL)" in text
    assert "use TLS (default: off; env CRAWLFLEET_TLS)" in text
    assert "hunter2" not in text and "a secret (env CRAWLFLEET_SECRET)" in text


def test_repeated_flags_do_not_override_the_first_copy() -> None:
    parser = parser_with({"CRAWLFLEET_SLOTS": "3"})
    sub = parser.add_subparsers(dest="command").add_parser("run")
    repeated = EnvFlags(sub, {"CRAWLFLEET_SLOTS": "3"}, repeated=True)
    repeated.add("--slots", 8, "jobs at once", type=int)
    repeated.add_switch("--tls", False, "use TLS")
    assert (parser.parse_args(["run"]).slots, parser.parse_args(["run"]).tls) == (3, False)
    assert parser.parse_args(["run", "--slots", "4", "--tls"]).slots == 4
    assert parser.parse_args(["run", "--tls"]).tls is True


@pytest.mark.parametrize(("text", "value"), [("1", True), ("Yes", True), (" on ", True), ("0", False), ("", False)])
def test_parse_bool(text: str, value: bool) -> None:
    assert parse_bool(text) is value


def test_parse_bool_rejects_other_words() -> None:
    with pytest.raises(ValueError, match="not a boolean"):
        parse_bool("maybe")


def test_show_default() -> None:
    assert [show_default(v) for v in (1 / 3, ("scrape", "noop"), True, 8)] == ["0.333333", "scrape,noop", "on", "8"]


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        (positive_int, [("1", 1), ("20", 20)], ["0", "-1", "x"]),
        (non_negative_int, [("0", 0), ("3", 3)], ["-1", "1.5"]),
        (positive_float, [("0.5", 0.5)], ["0", "-1", "nan"]),
        (non_negative_float, [("0", 0.0), ("2.5", 2.5)], ["-0.1", "nan"]),
    ],
)
def test_number_types(kind: Callable[[str], object], good: list[tuple[str, object]], bad: list[str]) -> None:
    for text, value in good:
        assert kind(text) == value
    for text in bad:
        with pytest.raises((argparse.ArgumentTypeError, ValueError)):
            kind(text)


def test_comma_list() -> None:
    assert comma_list(" scrape, noop,scrape,, ") == ("scrape", "noop")
    assert comma_list("") == ()
