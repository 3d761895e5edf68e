"""Dashboard settings: one frozen object per process, built from flags and ``CRAWLFLEET_*`` variables."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from crawlfleet.common.channel import ChannelSecurity, add_security_flags, security_from
from crawlfleet.common.flags import EnvFlags, comma_list, positive_float
from crawlfleet.common.logs import DEFAULT_LOG_LEVEL, add_log_level_flag

DEFAULT_LISTEN = "127.0.0.1:8470"
DEFAULT_COORDINATORS = ("127.0.0.1:50051",)
DEFAULT_CALL_TIMEOUT = 10.0
DEFAULT_REFRESH_SECONDS = 2.0
DEFAULT_SESSION_IDLE_SECONDS = 12 * 3600.0


@dataclass(frozen=True, kw_only=True)
class DashboardSettings:
    """Everything the dashboard process is configured with. Durations are in seconds."""

    listen: str = DEFAULT_LISTEN
    # gRPC targets of coordinators sharing one database: calls go to the first that answers.
    coordinators: tuple[str, ...] = DEFAULT_COORDINATORS
    # TLS towards the coordinators; its token is never used (each user's own token is sent).
    security: ChannelSecurity = field(default_factory=ChannelSecurity)
    # No login: calls go without a token. Only for coordinators that run without tokens (the demo).
    anonymous: bool = False
    https_cert: Path | None = None
    https_key: Path | None = None
    call_timeout: float = DEFAULT_CALL_TIMEOUT
    # How often live pages get fresh numbers.
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS
    session_idle_seconds: float = DEFAULT_SESSION_IDLE_SECONDS
    log_level: str = DEFAULT_LOG_LEVEL

    def __post_init__(self) -> None:
        if not self.coordinators:
            raise ValueError("give at least one coordinator")
        if (self.https_cert is None) != (self.https_key is None):
            raise ValueError("--https-cert and --https-key go together")

    @property
    def uses_https(self) -> bool:
        return self.https_cert is not None

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)


def _listen(text: str) -> str:
    _, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return text


def _optional_path(text: str) -> Path | None:
    return Path(text) if text else None


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crawlfleet-dashboard",
        description="The operators' web dashboard: queue, hosts, crawls, jobs and the dead letter, "
        "read and acted on through the coordinators' Admin API with each user's own token.",
    )
    flags = EnvFlags(parser, env)
    flags.add(
        "--listen",
        DEFAULT_LISTEN,
        "HOST:PORT the dashboard serves HTTP on",
        type=_listen,
        variable="CRAWLFLEET_DASHBOARD_LISTEN",  # CRAWLFLEET_LISTEN is the coordinator's
    )
    flags.add(
        "--coordinators",
        DEFAULT_COORDINATORS,
        "comma-separated gRPC addresses of coordinators of one fleet; the first that answers serves",
        type=comma_list,
        metavar="ADDRS",
    )
    flags.add_switch(
        "--anonymous",
        False,
        "no login: call the coordinators without a token (only for coordinators without tokens)",
    )
    flags.add("--https-cert", None, "certificate (PEM) to serve HTTPS with", type=_optional_path, metavar="PEM")
    flags.add("--https-key", None, "private key (PEM) of --https-cert", type=_optional_path, metavar="PEM")
    flags.add("--call-timeout", DEFAULT_CALL_TIMEOUT, "seconds allowed per coordinator call", type=positive_float)
    flags.add("--refresh", DEFAULT_REFRESH_SECONDS, "seconds between live updates", type=positive_float)
    flags.add("--session-idle", DEFAULT_SESSION_IDLE_SECONDS, "seconds a login lasts unused", type=positive_float)
    add_log_level_flag(flags)
    add_security_flags(flags.group("towards the coordinators (TLS)"))
    return parser


def settings_from_args(argv: Sequence[str], env: Mapping[str, str]) -> DashboardSettings:
    """Parses flags (and their variables); exits with a usage error for bad ones."""
    parser = build_parser(env)
    ns = parser.parse_args(list(argv))
    try:
        return DashboardSettings(
            listen=ns.listen,
            coordinators=tuple(ns.coordinators),
            # Each user's own token goes with their calls: a token of the process's own is not used.
            security=replace(security_from(ns), token=None),
            anonymous=ns.anonymous,
            https_cert=ns.https_cert,
            https_key=ns.https_key,
            call_timeout=ns.call_timeout,
            refresh_seconds=ns.refresh,
            session_idle_seconds=ns.session_idle,
            log_level=ns.log_level,
        )
    except ValueError as exc:
        parser.error(str(exc))
