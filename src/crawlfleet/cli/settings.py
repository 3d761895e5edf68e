"""The CLI's global options: one frozen object per process, from flags and ``CRAWLFLEET_*`` variables.

This is the only module of the CLI that reads the environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from crawlfleet.common.channel import ChannelSecurity, add_security_flags, security_from
from crawlfleet.common.flags import ENV_PREFIX, EnvFlags

DEFAULT_COORDINATOR = "127.0.0.1:50051"
DEFAULT_CALL_TIMEOUT = 30.0


@dataclass(frozen=True, kw_only=True)
class CliSettings:
    """How to reach the coordinator, and how to print."""

    coordinator: str = DEFAULT_COORDINATOR
    security: ChannelSecurity = field(default_factory=ChannelSecurity)
    json: bool = False
    # Deadline of each call; long operations are made of many calls.
    call_timeout: float = DEFAULT_CALL_TIMEOUT

    def __post_init__(self) -> None:
        if self.call_timeout <= 0:
            raise ValueError("--call-timeout must be positive")

    # Shortcuts to ``security`` for the client module.
    @property
    def token(self) -> str | None:
        return self.security.token

    @property
    def uses_tls(self) -> bool:
        return self.security.uses_tls

    @property
    def tls_ca(self) -> Path | None:
        return self.security.tls_ca

    @property
    def tls_cert(self) -> Path | None:
        return self.security.tls_cert

    @property
    def tls_key(self) -> Path | None:
        return self.security.tls_key


def add_global_options(
    parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None, *, repeated: bool = False
) -> None:
    """The options every command shares; each defaults to its ``CRAWLFLEET_*`` variable.

    ``repeated``: the copy a subcommand carries so options may also follow the command
    (``crawlfleet stats --json``); it has no defaults, so it never overrides the first copy.
    """
    flags = EnvFlags(parser, os.environ if environ is None else environ, repeated=repeated)
    flags.add("--coordinator", DEFAULT_COORDINATOR, "coordinator address host:port", metavar="HOST:PORT")
    add_security_flags(flags)
    flags.add("--call-timeout", DEFAULT_CALL_TIMEOUT, "deadline of each call, seconds", type=float, metavar="S")
    flags.add_switch("--json", False, "print JSON for scripts instead of tables")


def settings_from(ns: argparse.Namespace, parser: argparse.ArgumentParser) -> CliSettings:
    """The settings of parsed options; a bad combination is a usage error (exit 2)."""
    try:
        return CliSettings(
            coordinator=ns.coordinator,
            security=security_from(ns),
            json=ns.json,
            call_timeout=ns.call_timeout,
        )
    except ValueError as exc:
        parser.error(str(exc))


def child_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the processes ``crawlfleet demo`` starts: this one without crawlfleet's own
    settings (and DATABASE_URL), so the demo runs the same whatever the shell exports; unbuffered
    output, so their logs can be followed."""
    env = os.environ if environ is None else environ
    kept = {k: v for k, v in env.items() if not k.startswith(ENV_PREFIX) and k != "DATABASE_URL"}
    return {**kept, "PYTHONUNBUFFERED": "1"}
