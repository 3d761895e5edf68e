"""The CLI's global options: one frozen object per process, from flags and ``CRAWLFLEET_*`` variables.

This is the only module of the CLI that reads the environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ENV_PREFIX = "CRAWLFLEET_"
DEFAULT_COORDINATOR = "127.0.0.1:50051"
DEFAULT_CALL_TIMEOUT = 30.0
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True, kw_only=True)
class CliSettings:
    """How to reach the coordinator, and how to print."""

    coordinator: str = DEFAULT_COORDINATOR
    token: str | None = field(default=None, repr=False)
    # TLS with the system's root certificates; implied by tls_ca or tls_cert.
    tls: bool = False
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    json: bool = False
    # Deadline of each call; long operations are made of many calls.
    call_timeout: float = DEFAULT_CALL_TIMEOUT

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        if self.token is not None and (
            not self.token.isascii() or not self.token.isprintable() or any(c.isspace() for c in self.token)
        ):
            raise ValueError("the token must be printable ASCII without spaces")
        if self.call_timeout <= 0:
            raise ValueError("--call-timeout must be positive")

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.tls_ca is not None or self.tls_cert is not None


def env_name(flag: str) -> str:
    """``--tls-ca`` -> ``CRAWLFLEET_TLS_CA``."""
    return ENV_PREFIX + flag.removeprefix("--").replace("-", "_").upper()


def add_global_options(
    parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None, *, repeated: bool = False
) -> None:
    """The options every command shares; each defaults to its ``CRAWLFLEET_*`` variable.

    ``repeated``: the copy a subcommand carries so options may also follow the command
    (``crawlfleet stats --json``); it has no defaults, so it never overrides the first copy.
    """
    env = os.environ if environ is None else environ

    def default(flag: str, fallback: str | None) -> object:
        return argparse.SUPPRESS if repeated else env.get(env_name(flag), fallback)

    def add(flag: str, fallback: str | None, help_text: str, **kwargs: object) -> None:
        name = env_name(flag)
        parser.add_argument(flag, default=default(flag, fallback), help=f"{help_text} [{name}]", **kwargs)  # type: ignore[arg-type]

    add("--coordinator", DEFAULT_COORDINATOR, "coordinator address host:port", metavar="HOST:PORT")
    add("--token", None, "bearer token sent as 'authorization: Bearer <token>' (flags show in ps)", metavar="T")
    add("--token-file", None, "file holding the bearer token", metavar="PATH")
    add("--tls-ca", None, "CA certificate (PEM) of the coordinator; turns TLS on", metavar="PEM")
    add("--tls-cert", None, "client certificate (PEM), for a coordinator that requires mTLS", metavar="PEM")
    add("--tls-key", None, "client private key (PEM)", metavar="PEM")
    add("--call-timeout", str(DEFAULT_CALL_TIMEOUT), "deadline of each call, seconds", type=float, metavar="S")
    parser.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS if repeated else _bool(env.get(env_name("--tls"), ""), env_name("--tls"), parser),
        help=f"use TLS with the system's root certificates (implied by --tls-ca/--tls-cert) [{env_name('--tls')}]",
    )
    parser.add_argument(
        "--json",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS if repeated else _bool(env.get(env_name("--json"), ""), env_name("--json"), parser),
        help=f"print JSON for scripts instead of tables [{env_name('--json')}]",
    )


def settings_from(ns: argparse.Namespace, parser: argparse.ArgumentParser) -> CliSettings:
    """The settings of parsed options; a bad combination is a usage error (exit 2)."""
    try:
        return CliSettings(
            coordinator=ns.coordinator,
            token=_token(ns),
            tls=ns.tls,
            tls_ca=Path(ns.tls_ca) if ns.tls_ca else None,
            tls_cert=Path(ns.tls_cert) if ns.tls_cert else None,
            tls_key=Path(ns.tls_key) if ns.tls_key else None,
            json=ns.json,
            call_timeout=ns.call_timeout,
        )
    except ValueError as exc:
        parser.error(str(exc))


def _token(ns: argparse.Namespace) -> str | None:
    if not ns.token_file:
        return ns.token or None
    if ns.token:
        raise ValueError("give --token or --token-file, not both")
    try:
        return Path(ns.token_file).read_text().strip() or None
    except OSError as exc:
        raise ValueError(f"cannot read --token-file {ns.token_file}: {exc.strerror}") from None


def _bool(text: str, name: str, parser: argparse.ArgumentParser) -> bool:
    value = text.strip().lower()
    if value not in _TRUE | _FALSE:
        parser.error(f"{name}: not a boolean: {text!r}")
    return value in _TRUE


def child_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the processes ``crawlfleet demo`` starts: this one without crawlfleet's own
    settings (and DATABASE_URL), so the demo runs the same whatever the shell exports; unbuffered
    output, so their logs can be followed."""
    env = os.environ if environ is None else environ
    kept = {k: v for k, v in env.items() if not k.startswith(ENV_PREFIX) and k != "DATABASE_URL"}
    return {**kept, "PYTHONUNBUFFERED": "1"}
