"""How the worker reaches the coordinator: TLS (verifying the coordinator, and a client certificate
for mTLS) and the bearer token sent as ``authorization: Bearer <token>`` with every call.

With TLS the token travels as call credentials; without TLS (a coordinator on loopback) a client
interceptor adds it to each call's metadata, since gRPC refuses call credentials on plain channels.
See docs/security.md.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from crawlfleet.worker.errors import WorkerError

log = logging.getLogger(__name__)

TLS_ENV = "CRAWLFLEET_TLS"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})

AddFlag = Callable[[str, str, Callable[[str], object], str], None]
ChannelOptions = Sequence[tuple[str, Any]]


class CredentialsError(WorkerError):
    """A TLS file cannot be read: the worker cannot start."""


def check_token(token: str) -> str:
    """``token`` if it can travel as a metadata value: printable ASCII without spaces."""
    if not token or not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise ValueError("the token must be printable ASCII without spaces")
    return token


@dataclass(frozen=True, kw_only=True)
class ChannelSecurity:
    """The worker's credentials towards the coordinator; all off by default (plain loopback)."""

    token: str | None = field(default=None, repr=False)
    # TLS with the system's root certificates; implied by tls_ca or tls_cert.
    tls: bool = False
    tls_ca: Path | None = None
    # Client certificate and key, for a coordinator that requires mTLS.
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        if self.token is not None:
            check_token(self.token)

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.tls_ca is not None or self.tls_cert is not None


def add_security_flags(parser: argparse.ArgumentParser, add: AddFlag, env: Mapping[str, str]) -> None:
    """The worker's token and TLS flags; each reads its CRAWLFLEET_* variable."""
    add("--token", "", str, "bearer token sent to the coordinator (prefer --token-file: flags show in ps)")
    add("--token-file", "", _optional_path, "file holding the bearer token")
    add("--tls-ca", "", _optional_path, "CA certificate (PEM) that signed the coordinator's certificate")
    add("--tls-cert", "", _optional_path, "client certificate (PEM), for a coordinator that requires mTLS")
    add("--tls-key", "", _optional_path, "client private key (PEM)")
    text = env.get(TLS_ENV, "").strip().lower()
    if text not in _TRUE | _FALSE:
        parser.error(f"{TLS_ENV}: not a boolean: {text!r}")
    parser.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=text in _TRUE,
        help=f"use TLS with the system's root certificates (implied by --tls-ca/--tls-cert) [{TLS_ENV}]",
    )


def security_from(ns: argparse.Namespace) -> ChannelSecurity:
    """``ChannelSecurity`` from parsed flags; reads the token file. Raises ``ValueError``."""
    token: str | None = ns.token or None
    if ns.token_file is not None:
        if token is not None:
            raise ValueError("give --token or --token-file, not both")
        try:
            token = ns.token_file.read_text().strip()
        except OSError as exc:
            raise ValueError(f"cannot read token file {ns.token_file}: {exc.strerror}") from None
    return ChannelSecurity(token=token, tls=ns.tls, tls_ca=ns.tls_ca, tls_cert=ns.tls_cert, tls_key=ns.tls_key)


def open_channel(target: str, security: ChannelSecurity, options: ChannelOptions) -> grpc.aio.Channel:
    """A channel to ``target`` with TLS and the bearer token as configured."""
    if security.uses_tls:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(security.tls_ca, "CA certificate"),
            private_key=_read(security.tls_key, "TLS key"),
            certificate_chain=_read(security.tls_cert, "TLS certificate"),
        )
        if security.token is not None:
            credentials = grpc.composite_channel_credentials(
                credentials, grpc.access_token_call_credentials(security.token)
            )
        return grpc.aio.secure_channel(target, credentials, options=options)
    if security.token is None:
        return grpc.aio.insecure_channel(target, options=options)
    if not is_loopback_target(target):
        log.warning("sending the bearer token to %s without TLS: configure --tls-ca", target)
    return grpc.aio.insecure_channel(target, options=options, interceptors=[BearerToken(security.token)])


class BearerToken(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds ``authorization: Bearer <token>`` to every unary call (all of JobQueue's are)."""

    def __init__(self, token: str) -> None:
        self._value = f"Bearer {check_token(token)}"

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        metadata = grpc.aio.Metadata(*(client_call_details.metadata or ()))
        metadata.add("authorization", self._value)
        details = grpc.aio.ClientCallDetails(
            method=client_call_details.method,
            timeout=client_call_details.timeout,
            metadata=metadata,
            credentials=client_call_details.credentials,
            wait_for_ready=client_call_details.wait_for_ready,
        )
        return await continuation(details, request)


def is_loopback_target(target: str) -> bool:
    """Whether a gRPC target (``host:port``, ``dns:///host:port``, ``ipv6:[::1]:port``) names this host."""
    if target.startswith(("unix:", "unix-abstract:")):
        return True
    address = target.rsplit("/", 1)[-1]  # dns:///host:port, dns://resolver/host:port
    for scheme in ("dns:", "ipv4:", "ipv6:"):
        address = address.removeprefix(scheme)
    if address.startswith("["):
        host = address[1:].partition("]")[0]
    elif address.count(":") == 1:
        host = address.partition(":")[0]
    else:
        host = address  # no port, or a bare IPv6 address
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _optional_path(text: str) -> Path | None:
    return Path(text) if text else None


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CredentialsError(f"cannot read {what} {path}: {exc.strerror}") from None
