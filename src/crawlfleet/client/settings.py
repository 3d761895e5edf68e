"""Where the coordinator is and how to reach it: one frozen object, from arguments or ``CRAWLFLEET_*``.

This is the only module of the library that reads the environment. It reads the variables the
``crawlfleet`` command reads, through the same shared flag definitions, so a shell set up for the
command is set up for a script using ``Client.from_env()``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from crawlfleet.client.errors import ConfigurationError
from crawlfleet.common.channel import ChannelSecurity, add_security_flags, security_from
from crawlfleet.common.flags import EnvFlags

DEFAULT_COORDINATOR = "127.0.0.1:50051"
DEFAULT_CALL_TIMEOUT = 30.0
# A page of results with the main text of each page can be large.
MAX_RECEIVE_BYTES = 64 * 1024 * 1024
ChannelOptions = Sequence[tuple[str, Any]]


@dataclass(frozen=True, kw_only=True)
class ClientSettings:
    """A client's coordinator address, credentials, call deadline and extra gRPC channel options."""

    coordinator: str = DEFAULT_COORDINATOR
    security: ChannelSecurity = field(default_factory=ChannelSecurity)
    # Deadline of each unary call, seconds; operations made of many calls give each one this long.
    call_timeout: float = DEFAULT_CALL_TIMEOUT
    channel_options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not self.coordinator:
            raise ConfigurationError("the coordinator address is empty")
        if not self.call_timeout > 0:
            raise ConfigurationError(f"call_timeout must be positive, not {self.call_timeout}")

    def options(self) -> tuple[tuple[str, Any], ...]:
        """The channel options: the caller's, and the library's where the caller set none."""
        given = {name for name, _ in self.channel_options}
        defaults = (("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),)
        return (*self.channel_options, *(option for option in defaults if option[0] not in given))


def security(
    *,
    token: str | None,
    tls: bool,
    tls_ca: str | os.PathLike[str] | None,
    tls_cert: str | os.PathLike[str] | None,
    tls_key: str | os.PathLike[str] | None,
) -> ChannelSecurity:
    """The channel security of a client's arguments; a bad combination is a ``ConfigurationError``."""
    try:
        return ChannelSecurity(
            token=token,
            tls=tls,
            tls_ca=_path(tls_ca),
            tls_cert=_path(tls_cert),
            tls_key=_path(tls_key),
        )
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


def settings_from_env(environ: Mapping[str, str] | None = None) -> ClientSettings:
    """The settings of ``CRAWLFLEET_COORDINATOR``, ``CRAWLFLEET_TOKEN`` (or ``_TOKEN_FILE``),
    ``CRAWLFLEET_TLS``, ``_TLS_CA``, ``_TLS_CERT``, ``_TLS_KEY`` and ``CRAWLFLEET_CALL_TIMEOUT``.

    Raises ``ConfigurationError`` for a value that cannot be used (not a number, an unreadable
    token file, a certificate without its key).
    """
    parser = _RaisingParser(prog="CRAWLFLEET_* settings", add_help=False)
    flags = EnvFlags(parser, os.environ if environ is None else environ)
    flags.add("--coordinator", DEFAULT_COORDINATOR, "coordinator address host:port")
    flags.add("--call-timeout", DEFAULT_CALL_TIMEOUT, "deadline of each call, seconds", type=float)
    add_security_flags(flags)
    ns = parser.parse_args([])
    try:
        channel_security = security_from(ns)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    return ClientSettings(coordinator=ns.coordinator, security=channel_security, call_timeout=ns.call_timeout)


class _RaisingParser(argparse.ArgumentParser):
    """Reads variables through the shared flag definitions; a bad value raises instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise ConfigurationError(message)


def _path(value: str | os.PathLike[str] | None) -> Path | None:
    return Path(value) if value is not None and str(value) else None
