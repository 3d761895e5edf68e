"""The client side of reaching a coordinator: TLS (verifying the coordinator, and a client certificate
for mTLS) and the bearer token sent as ``authorization: Bearer <token>`` with every call.

With TLS the token travels as call credentials; without TLS (a coordinator on loopback) client
interceptors add it to each call's metadata, since gRPC refuses call credentials on plain channels.
Channels come in both gRPC flavours: ``open_aio_channel`` for asyncio programs (the worker) and
``open_channel`` for blocking ones (the CLI). See docs/security.md.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from crawlfleet.common.flags import EnvFlags

log = logging.getLogger(__name__)

ChannelOptions = Sequence[tuple[str, Any]]
AUTHORIZATION_KEY = "authorization"
LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


class CredentialsError(Exception):
    """A TLS file cannot be read: the program cannot reach the coordinator until it is fixed."""


def check_token(token: str) -> str:
    """``token`` if it can travel as a metadata value: printable ASCII without spaces."""
    if not token or not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise ValueError("the token must be printable ASCII without spaces")
    return token


@dataclass(frozen=True, kw_only=True)
class ChannelSecurity:
    """A client's credentials towards the coordinator; all off by default (plain loopback)."""

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
        """Whether channels use TLS: asked for, or implied by a CA or client certificate."""
        return self.tls or self.tls_ca is not None or self.tls_cert is not None


def add_security_flags(flags: EnvFlags) -> None:
    """The token and TLS flags of a client program; each reads its ``CRAWLFLEET_*`` variable."""
    flags.add(
        "--token",
        None,
        "bearer token sent as 'authorization: Bearer <token>' (prefer --token-file: flags show in ps)",
        metavar="TOKEN",
        secret=True,
    )
    flags.add("--token-file", None, "file holding the bearer token", type=_optional_path, metavar="PATH")
    flags.add(
        "--tls-ca",
        None,
        "CA certificate (PEM) that signed the coordinator's certificate; turns TLS on",
        type=_optional_path,
        metavar="PEM",
    )
    flags.add(
        "--tls-cert",
        None,
        "client certificate (PEM), for a coordinator that requires mTLS",
        type=_optional_path,
        metavar="PEM",
    )
    flags.add("--tls-key", None, "client private key (PEM)", type=_optional_path, metavar="PEM")
    flags.add_switch("--tls", False, "use TLS with the system's root certificates (implied by --tls-ca/--tls-cert)")


def security_from(ns: argparse.Namespace) -> ChannelSecurity:
    """``ChannelSecurity`` from flags parsed with ``add_security_flags``; reads the token file.

    Raises ``ValueError`` (a usage error) for a bad combination or an unreadable token file.
    """
    token: str | None = ns.token or None
    if ns.token_file is not None:
        if token is not None:
            raise ValueError("give --token or --token-file, not both")
        try:
            token = ns.token_file.read_text().strip()
        except OSError as exc:
            raise ValueError(f"cannot read --token-file {ns.token_file}: {exc.strerror}") from None
        if not token:
            raise ValueError(f"--token-file {ns.token_file} is empty")
    return ChannelSecurity(token=token, tls=ns.tls, tls_ca=ns.tls_ca, tls_cert=ns.tls_cert, tls_key=ns.tls_key)


def open_aio_channel(target: str, security: ChannelSecurity, options: ChannelOptions = ()) -> grpc.aio.Channel:
    """An asyncio channel to ``target`` with TLS and the bearer token as configured.

    Raises ``CredentialsError`` when a TLS file cannot be read.
    """
    if security.uses_tls:
        return grpc.aio.secure_channel(target, _tls_credentials(security), options=options)
    if security.token is None:
        return grpc.aio.insecure_channel(target, options=options)
    _warn_if_exposed(target)
    interceptors: list[grpc.aio.ClientInterceptor] = [
        AioBearerUnaryUnary(security.token),
        AioBearerUnaryStream(security.token),
    ]
    return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)


def open_channel(target: str, security: ChannelSecurity, options: ChannelOptions = ()) -> grpc.Channel:
    """A blocking channel to ``target`` with TLS and the bearer token as configured.

    Raises ``CredentialsError`` when a TLS file cannot be read.
    """
    if security.uses_tls:
        return grpc.secure_channel(target, _tls_credentials(security), options=options)
    channel = grpc.insecure_channel(target, options=options)
    if security.token is None:
        return channel
    _warn_if_exposed(target)
    return grpc.intercept_channel(channel, BearerInterceptor(security.token))


def bearer_metadata(token: str) -> tuple[str, str]:
    """The metadata entry that carries ``token``."""
    return AUTHORIZATION_KEY, f"Bearer {check_token(token)}"


class BearerInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds the bearer token to every unary and server-streaming call of a blocking channel."""

    def __init__(self, token: str) -> None:
        self._entry = bearer_metadata(token)

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def _with_token(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(
            method=details.method,
            timeout=details.timeout,
            metadata=(*(details.metadata or ()), self._entry),
            credentials=details.credentials,
            wait_for_ready=getattr(details, "wait_for_ready", None),
            compression=getattr(details, "compression", None),
        )


@dataclass(frozen=True, kw_only=True)
class _CallDetails(grpc.ClientCallDetails):
    """``grpc.ClientCallDetails`` is abstract; interceptors hand on one of these instead."""

    method: str
    timeout: float | None
    metadata: tuple[tuple[str, str | bytes], ...] | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class _AioBearer:
    """What both asyncio interceptors do: hand the call on with the token added to its metadata."""

    def __init__(self, token: str) -> None:
        self._entry = bearer_metadata(token)

    async def _with_token(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata.add(*self._entry)
        with_token = grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=details.timeout,
            metadata=metadata,
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )
        return await continuation(with_token, request)


# grpc.aio files an interceptor under the first interceptor type it is an instance of, so unary and
# server-streaming calls each need an interceptor object of their own.
class AioBearerUnaryUnary(_AioBearer, grpc.aio.UnaryUnaryClientInterceptor):
    """Adds the bearer token to every unary call of an asyncio channel."""

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await self._with_token(continuation, client_call_details, request)


class AioBearerUnaryStream(_AioBearer, grpc.aio.UnaryStreamClientInterceptor):
    """Adds the bearer token to every server-streaming call of an asyncio channel."""

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await self._with_token(continuation, client_call_details, request)


def is_loopback_target(target: str) -> bool:
    """Whether a gRPC target or listen address (``host:port``, ``dns:///host:port``, ``ipv6:[::1]:port``,
    ``unix:path``) names this host only; an empty host (``:50051``, all interfaces) does not."""
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
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_warned_targets: set[str] = set()
_warned_lock = threading.Lock()


def _warn_if_exposed(target: str) -> None:
    """Warns once per target and process: a client that reopens its channel should not repeat it."""
    if is_loopback_target(target):
        return
    with _warned_lock:
        if target in _warned_targets:
            return
        _warned_targets.add(target)
    log.warning("sending the bearer token to %s without TLS: anyone on the path can read it; use --tls-ca", target)


def _tls_credentials(security: ChannelSecurity) -> grpc.ChannelCredentials:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(security.tls_ca, "--tls-ca"),
        private_key=_read(security.tls_key, "--tls-key"),
        certificate_chain=_read(security.tls_cert, "--tls-cert"),
    )
    if security.token is None:
        return credentials
    return grpc.composite_channel_credentials(credentials, grpc.access_token_call_credentials(security.token))


def _optional_path(text: str) -> Path | None:
    return Path(text) if text else None


def _read(path: Path | None, flag: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CredentialsError(f"cannot read {flag} {path}: {exc.strerror}") from None
