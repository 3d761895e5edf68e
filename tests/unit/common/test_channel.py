"""Client security settings and flags; the loopback rule; the one warning for a token sent in clear."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest

from crawlfleet.common import channel
from crawlfleet.common.channel import (
    ChannelSecurity,
    add_security_flags,
    is_loopback_target,
    open_channel,
    security_from,
)
from crawlfleet.common.flags import EnvFlags


def parse(argv: list[str], env: dict[str, str] | None = None) -> ChannelSecurity:
    parser = argparse.ArgumentParser()
    add_security_flags(EnvFlags(parser, env or {}))
    return security_from(parser.parse_args(argv))


def test_off_by_default() -> None:
    security = parse([])
    assert security == ChannelSecurity() and not security.uses_tls


def test_token_and_tls_from_env_and_flags() -> None:
    env = {"CRAWLFLEET_TOKEN": "w-token", "CRAWLFLEET_TLS_CA": "/etc/ca.crt"}
    security = parse(["--tls-cert", "c.crt", "--tls-key", "c.key"], env)
    assert security.token == "w-token"
    assert (security.tls_ca, security.tls_cert, security.tls_key) == (Path("/etc/ca.crt"), Path("c.crt"), Path("c.key"))
    assert security.uses_tls
    assert "w-token" not in repr(security)
    assert parse([], {"CRAWLFLEET_TLS": "yes"}).uses_tls
    assert not parse(["--no-tls"], {"CRAWLFLEET_TLS": "yes"}).uses_tls


def test_token_never_shows_in_help() -> None:
    parser = argparse.ArgumentParser()
    add_security_flags(EnvFlags(parser, {"CRAWLFLEET_TOKEN": "w-token"}))
    text = parser.format_help()
    assert "CRAWLFLEET_TOKEN" in text and "w-token" not in text


def test_token_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("from-file\n")
    assert parse(["--token-file", str(path)]).token == "from-file"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--token", "has space"], "printable ASCII"),
        (["--token", "a", "--token-file", "/dev/null"], "not both"),
        (["--token-file", "/nonexistent/token"], "cannot read --token-file"),
        (["--token-file", "/dev/null"], "is empty"),
        (["--tls-cert", "c.crt"], "go together"),
    ],
)
def test_bad_security_flags(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(argv)


@pytest.mark.parametrize(
    ("target", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("localhost:50051", True),
        ("dns:///localhost:50051", True),
        ("[::1]:50051", True),
        ("ipv6:[::1]:50051", True),
        ("unix:/run/crawlfleet.sock", True),
        ("ip6-localhost:50051", True),
        (":50051", False),
        ("10.0.0.1:50051", False),
        ("coordinator:50051", False),
        ("dns:///coordinator.example:443", False),
    ],
)
def test_is_loopback_target(target: str, loopback: bool) -> None:
    assert is_loopback_target(target) is loopback


def test_token_in_clear_to_a_remote_target_warns_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(channel, "_warned_targets", set())
    security = ChannelSecurity(token="t")
    with caplog.at_level(logging.WARNING, logger=channel.__name__):
        for _ in range(2):  # opening a channel connects lazily: no server is needed
            open_channel("10.255.255.1:50051", security).close()
        open_channel("127.0.0.1:50051", security).close()
        open_channel("10.255.255.1:50051", ChannelSecurity(token="t", tls=True)).close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "10.255.255.1:50051" in warnings[0] and "without TLS" in warnings[0]
