"""The coordinator's security settings and how the server applies them: tokens, TLS, the loopback rule.

Without tokens, auth is off, which is allowed on a loopback address only unless the operator says
``--insecure-no-auth``. See docs/security.md.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import grpc

from crawlfleet.common.channel import is_loopback_target
from crawlfleet.common.flags import EnvFlags
from crawlfleet.coordinator.security.auth import (
    Authenticator,
    AuthInterceptor,
    SecurityConfigError,
    TokenEntry,
    hash_token,
    load_tokens_file,
    parse_token_flag,
)
from crawlfleet.coordinator.security.tls import server_credentials

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SecuritySettings:
    """Who may call the coordinator and over what transport."""

    # Lines of role:name:sha256hex; read at start.
    tokens_file: Path | None = None
    # Tokens given as --token ROLE=TOKEN (development and tests), already hashed.
    tokens: tuple[TokenEntry, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # With a client CA, every client must present a certificate it signed (mTLS).
    tls_client_ca: Path | None = None
    # Serve without tokens on a non-loopback address.
    insecure_no_auth: bool = False


def add_security_flags(flags: EnvFlags) -> None:
    """The security flags of ``crawlfleet-coordinator``; each reads CRAWLFLEET_<FLAG> except --token."""
    flags.add(
        "--tokens-file",
        None,
        "file of role:name:sha256hex lines (see the hash-token command); unset: auth off",
        type=Path,
        metavar="PATH",
    )
    # Not from the environment: CRAWLFLEET_TOKEN is the token clients send.
    flags.add_without_env(
        "--token",
        "INSECURE, development only: accept TOKEN for ROLE (visible in the process list); repeatable",
        dest="tokens",
        metavar="ROLE=TOKEN",
        type=_token_flag,
        action="append",
        default=[],
    )
    flags.add("--tls-cert", None, "server certificate (PEM)", type=Path, metavar="PEM")
    flags.add("--tls-key", None, "server private key (PEM)", type=Path, metavar="PEM")
    flags.add(
        "--tls-client-ca",
        None,
        "CA certificate (PEM) clients must present a certificate of (mTLS)",
        type=Path,
        metavar="PEM",
    )
    flags.add_switch(
        "--insecure-no-auth",
        False,
        "serve without tokens on a non-loopback address: anyone who reaches it may call everything",
        negatable=False,
    )


def security_from_args(args: argparse.Namespace) -> SecuritySettings:
    return SecuritySettings(
        tokens_file=args.tokens_file,
        tokens=tuple(args.tokens),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        insecure_no_auth=args.insecure_no_auth,
    )


def _token_flag(text: str) -> TokenEntry:
    try:
        return parse_token_flag(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@dataclass(frozen=True)
class ServerSecurity:
    """What the server is built with: its interceptors, and TLS credentials for its port (or none)."""

    interceptors: tuple[grpc.aio.ServerInterceptor, ...]
    credentials: grpc.ServerCredentials | None

    def add_port(self, server: grpc.aio.Server, listen: str) -> int:
        """Binds ``listen`` with TLS when configured; returns the port (0 if binding failed)."""
        if self.credentials is None:
            return server.add_insecure_port(listen)
        return server.add_secure_port(listen, self.credentials)


def prepare(security: SecuritySettings, listen: str) -> ServerSecurity:
    """Loads tokens and TLS files and applies the loopback rule; raises ``SecurityConfigError``."""
    credentials = _credentials(security)
    tokens = security.tokens
    if security.tokens_file is not None:
        from_file = load_tokens_file(security.tokens_file)
        if not from_file:
            # Otherwise a truncated or mistyped file would silently turn authentication off.
            raise SecurityConfigError(
                f"the tokens file {security.tokens_file} holds no tokens: add some (see docs/security.md) "
                "or drop --tokens-file to serve without authentication on loopback"
            )
        tokens = (*from_file, *tokens)
    loopback = is_loopback_target(listen)
    if not tokens:
        if not loopback and not security.insecure_no_auth:
            raise SecurityConfigError(
                f"refusing to serve {listen} without authentication: configure --tokens-file "
                "(see docs/security.md), listen on a loopback address, or pass --insecure-no-auth"
            )
        if loopback:
            log.warning("auth disabled: no tokens configured (loopback only)")
        else:
            log.warning("auth disabled on %s (--insecure-no-auth): anyone who reaches it may call everything", listen)
        return ServerSecurity((), credentials)
    authenticator = Authenticator(tokens)
    roles = Counter(str(entry.role) for entry in tokens)
    log.info("auth enabled: %s", ", ".join(f"{count} {role}" for role, count in sorted(roles.items())))
    if credentials is None and not loopback:
        log.warning("bearer tokens reach %s in clear text: configure --tls-cert and --tls-key", listen)
    return ServerSecurity((AuthInterceptor(authenticator),), credentials)


def _credentials(security: SecuritySettings) -> grpc.ServerCredentials | None:
    if (security.tls_cert is None) != (security.tls_key is None):
        raise SecurityConfigError("--tls-cert and --tls-key go together")
    if security.tls_cert is None or security.tls_key is None:
        if security.tls_client_ca is not None:
            raise SecurityConfigError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    credentials = server_credentials(cert=security.tls_cert, key=security.tls_key, client_ca=security.tls_client_ca)
    log.info("TLS enabled%s", " and client certificates required" if security.tls_client_ca else "")
    return credentials


def hash_token_command(stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
    """``crawlfleet-coordinator hash-token``: reads a token (prompting without echo on a terminal)
    and prints its SHA-256 hex digest, the third field of a tokens file line."""
    source = sys.stdin if stdin is None else stdin
    sink = sys.stdout if stdout is None else stdout
    token = getpass.getpass("token: ") if source.isatty() else source.readline()
    token = token.strip()
    if not token:
        raise SecurityConfigError("no token given on standard input")
    print(hash_token(token), file=sink)
