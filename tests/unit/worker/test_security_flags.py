"""The worker's token and TLS flags reach its settings (the flags themselves: tests/unit/common)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawlfleet.common.channel import ChannelSecurity
from crawlfleet.worker.settings import WorkerSettings


def test_off_by_default() -> None:
    security = WorkerSettings.from_args([], env={}).security
    assert security == ChannelSecurity() and not security.uses_tls


def test_token_and_tls_from_env_and_flags() -> None:
    env = {"CRAWLFLEET_TOKEN": "w-token", "CRAWLFLEET_TLS_CA": "/etc/ca.crt"}
    security = WorkerSettings.from_args(["--tls-cert", "c.crt", "--tls-key", "c.key"], env=env).security
    assert security == ChannelSecurity(
        token="w-token", tls_ca=Path("/etc/ca.crt"), tls_cert=Path("c.crt"), tls_key=Path("c.key")
    )


@pytest.mark.parametrize("argv", [["--token", "has space"], ["--tls-cert", "c.crt"]])
def test_bad_security_flags_exit_with_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc_info:
        WorkerSettings.from_args(argv, env={})
    assert exc_info.value.code == 2
    assert "usage:" in capsys.readouterr().err
