"""The worker's token and TLS flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawlfleet.worker.credentials import ChannelSecurity, is_loopback_target
from crawlfleet.worker.settings import WorkerSettings


def test_off_by_default() -> None:
    security = WorkerSettings.from_args([], env={}).security
    assert security == ChannelSecurity() and not security.uses_tls


def test_token_and_tls_from_env_and_flags(tmp_path: Path) -> None:
    env = {"CRAWLFLEET_TOKEN": "w-token", "CRAWLFLEET_TLS_CA": "/etc/ca.crt"}
    security = WorkerSettings.from_args(["--tls-cert", "c.crt", "--tls-key", "c.key"], env=env).security
    assert security.token == "w-token"
    assert (security.tls_ca, security.tls_cert, security.tls_key) == (Path("/etc/ca.crt"), Path("c.crt"), Path("c.key"))
    assert security.uses_tls
    assert "w-token" not in repr(security)
    assert WorkerSettings.from_args([], env={"CRAWLFLEET_TLS": "yes"}).security.uses_tls


def test_token_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("from-file\n")
    assert WorkerSettings.from_args(["--token-file", str(path)], env={}).security.token == "from-file"


@pytest.mark.parametrize(
    "argv",
    [
        ["--token", "has space"],
        ["--token", "a", "--token-file", "/dev/null"],
        ["--token-file", "/nonexistent/token"],
        ["--tls-cert", "c.crt"],
    ],
)
def test_bad_security_flags_exit(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        WorkerSettings.from_args(argv, env={})


@pytest.mark.parametrize(
    ("target", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("localhost:50051", True),
        ("dns:///localhost:50051", True),
        ("[::1]:50051", True),
        ("ipv6:[::1]:50051", True),
        ("10.0.0.1:50051", False),
        ("coordinator:50051", False),
    ],
)
def test_is_loopback_target(target: str, loopback: bool) -> None:
    assert is_loopback_target(target) is loopback
