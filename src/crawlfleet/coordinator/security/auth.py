"""Bearer tokens with roles: the tokens file, and the server interceptor that checks every call.

A tokens file holds one token per line as ``role:name:sha256hex``; only the SHA-256 of a token is
stored, so the file is no secret. Callers send ``authorization: Bearer <token>``; the interceptor
hashes the token, compares it with every known digest in constant time, and checks the token's role
against the method called. See docs/security.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from crawlfleet.common.ratelimit import RateLimitedLog
from crawlfleet.coordinator.api.status import to_status
from crawlfleet.coordinator.errors import CoordinatorError, PermissionDenied, Unauthenticated
from crawlfleet.coordinator.security.principal import Principal, bind_principal, reset_principal
from crawlfleet.coordinator.security.principal import Role as Role  # re-exported: roles belong to auth
from crawlfleet.v1 import admin_pb2, crawls_pb2, job_queue_pb2

log = logging.getLogger(__name__)
# Anyone who reaches the port can be refused in a loop: their lines must not flood the log.
_refusals = RateLimitedLog(log)

AUTHORIZATION_KEY = "authorization"
BEARER_SCHEME = "bearer"
_DIGEST = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9._@/+-]+")
# Load balancers probe health and grpcurl needs reflection before it can hold a token.
PUBLIC_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class SecurityConfigError(ValueError):
    """The security configuration (tokens, TLS files, listen address) cannot be used."""


def _methods(service: ServiceDescriptor, *names: str) -> frozenset[str]:
    # Looked up in the descriptor, so a renamed RPC fails at import rather than locking callers out.
    return frozenset(f"/{service.full_name}/{service.methods_by_name[name].name}" for name in names)


_JOB_QUEUE = job_queue_pb2.DESCRIPTOR.services_by_name["JobQueue"]
_ADMIN = admin_pb2.DESCRIPTOR.services_by_name["Admin"]
_CRAWLS = crawls_pb2.DESCRIPTOR.services_by_name["Crawls"]

# What each role may call; admin may call everything. A method missing here is admin-only.
# Producers read only the jobs they enqueued and the crawls they started (principal.visible_owner);
# admins read every one.
ROLE_METHODS: Mapping[Role, frozenset[str]] = {
    Role.PRODUCER: _methods(_JOB_QUEUE, "Enqueue", "WatchJobs")
    | _methods(_ADMIN, "GetJob", "ListResults", "GetThumbnail")
    | _methods(_CRAWLS, "StartCrawl", "GetCrawl", "WatchCrawl", "ListCrawls", "CancelCrawl", "RefreshCrawl"),
    Role.WORKER: _methods(
        _JOB_QUEUE, "Lease", "Heartbeat", "Complete", "Fail", "ReportRobots", "GetRobots", "FindStoredImages"
    ),
    # Every read of the operator surface, no action: a viewer sees all jobs and crawls, changes none.
    Role.VIEWER: _methods(
        _ADMIN,
        "GetJob",
        "GetQueueStats",
        "GetQueueHealth",
        "GetQueueActivity",
        "ListJobs",
        "ListWorkers",
        "GetThumbnail",
        "ListResults",
        "ListHosts",
        "GetHost",
        "ListHostPolicies",
    )
    | _methods(_CRAWLS, "GetCrawl", "WatchCrawl", "ListCrawls")
    | _methods(_JOB_QUEUE, "WatchJobs"),
}


def parse_role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise ValueError(f"unknown role {text!r}, expected one of {', '.join(Role)}") from None


def is_public(method: str) -> bool:
    """Whether ``method`` (``/package.Service/Method``) is served without a token."""
    return method.startswith(PUBLIC_METHOD_PREFIXES)


def may_call(role: Role, method: str) -> bool:
    return role is Role.ADMIN or method in ROLE_METHODS.get(role, frozenset())


def hash_token(token: str) -> str:
    """The SHA-256 hex digest of ``token``, as the tokens file stores it."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class TokenEntry:
    """One accepted token: its role, a name for logs, and the SHA-256 hex digest of the token."""

    role: Role
    name: str
    digest: str = field(repr=False)

    def __post_init__(self) -> None:
        if not _DIGEST.fullmatch(self.digest):
            raise ValueError("digest must be 64 lowercase hex digits (the SHA-256 of the token)")
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"name must match {_NAME.pattern}, got {self.name!r}")

    @classmethod
    def from_token(cls, role: Role | str, name: str, token: str) -> TokenEntry:
        """An entry for a plain token (flags and tests); the token itself is not kept."""
        return cls(role=Role(role), name=name, digest=hash_token(token))


def parse_tokens(text: str, source: str = "<tokens>") -> tuple[TokenEntry, ...]:
    """Parses ``role:name:sha256hex`` lines; blank lines and ``#`` comments are skipped."""
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [part.strip() for part in line.split(":")]
        try:
            if len(parts) != 3:
                raise ValueError("expected role:name:sha256hex")
            role, name, digest = parts
            entries.append(TokenEntry(role=parse_role(role), name=name, digest=digest.lower()))
        except ValueError as exc:
            raise SecurityConfigError(f"{source}:{number}: {exc}") from None
    return tuple(entries)


def load_tokens_file(path: Path) -> tuple[TokenEntry, ...]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SecurityConfigError(f"cannot read tokens file {path}: {exc.strerror}") from None
    return parse_tokens(text, str(path))


def parse_token_flag(text: str) -> TokenEntry:
    """``ROLE=TOKEN`` from ``--token``: a plain token on the command line, for development only."""
    role, sep, token = text.partition("=")
    if not sep or not token:
        raise ValueError("expected ROLE=TOKEN")
    return TokenEntry.from_token(parse_role(role), f"flag-{role}", token)


class Authenticator:
    """Decides who a caller is (from its bearer token) and whether it may call a method."""

    def __init__(self, tokens: Iterable[TokenEntry]) -> None:
        self._tokens = tuple((entry, bytes.fromhex(entry.digest)) for entry in tokens)
        digests = [digest for _, digest in self._tokens]
        if len(set(digests)) != len(digests):
            raise SecurityConfigError("the same token is configured more than once")

    def authenticate(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> Principal:
        """The principal of the call's bearer token; raises ``Unauthenticated``."""
        digest = hashlib.sha256(bearer_token(metadata).encode()).digest()
        found = None
        for entry, known in self._tokens:  # no early exit: the time taken does not depend on the match
            if hmac.compare_digest(known, digest):
                found = entry
        if found is None:
            raise Unauthenticated("invalid bearer token")
        return Principal(found.role, found.name)

    def authorize(self, method: str, metadata: Sequence[tuple[str, str | bytes]] | None) -> Principal | None:
        """Checks a call; ``None`` for public methods. Raises ``Unauthenticated`` or ``PermissionDenied``."""
        if is_public(method):
            return None
        principal = self.authenticate(metadata)
        if not may_call(principal.role, method):
            raise PermissionDenied(
                f"role {principal.role} ({principal.name}) may not call {method}",
                metadata={"method": method, "role": str(principal.role)},
            )
        return principal


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The token of the one ``authorization: Bearer <token>`` entry; raises ``Unauthenticated``."""
    values = [value for key, value in metadata or () if key.lower() == AUTHORIZATION_KEY]
    if not values:
        raise Unauthenticated("missing 'authorization: Bearer <token>' metadata")
    if len(values) > 1:
        raise Unauthenticated("more than one 'authorization' metadata entry")
    value = values[0]
    scheme, _, token = value.strip().partition(" ") if isinstance(value, str) else ("", "", "")
    token = token.strip()
    if scheme.lower() != BEARER_SCHEME or not token or any(c.isspace() for c in token):
        raise Unauthenticated("malformed 'authorization' metadata: expected 'Bearer <token>'")
    return token


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without a valid token (UNAUTHENTICATED) or whose role may not call the
    method (PERMISSION_DENIED); health and reflection pass without a token."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # UNIMPLEMENTED either way
        method = handler_call_details.method
        try:
            principal = self._authenticator.authorize(method, handler_call_details.invocation_metadata)
        except CoordinatorError as error:
            return _refusing(handler, method, error)
        if principal is None:
            return handler
        return _as_principal(handler, principal)


def _as_principal(handler: grpc.RpcMethodHandler[Any, Any], principal: Principal) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` running with ``principal`` as the current one (security/principal.py).

    The handler is wrapped rather than the variable set here: the interceptor's context is not
    promised to be the handler's.
    """
    if handler.request_streaming:
        return handler  # the API has no client-streaming RPCs; such a handler sees no principal
    if handler.response_streaming:
        stream: Any = handler.unary_stream

        async def serve_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            token = bind_principal(principal)
            try:
                async for response in stream(request, context):
                    yield response
            finally:
                # A stream closed from elsewhere (garbage collection) cannot reset the variable of
                # its call's task; that task ends with the call anyway.
                with contextlib.suppress(ValueError):
                    reset_principal(token)

        return grpc.unary_stream_rpc_method_handler(
            serve_stream, handler.request_deserializer, handler.response_serializer
        )
    unary: Any = handler.unary_unary

    async def serve(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        token = bind_principal(principal)
        try:
            return await unary(request, context)
        finally:
            reset_principal(token)

    return grpc.unary_unary_rpc_method_handler(serve, handler.request_deserializer, handler.response_serializer)


def _refusing(
    handler: grpc.RpcMethodHandler[Any, Any], method: str, error: CoordinatorError
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same shape as ``handler`` that aborts with ``error``'s status.

    The request is never deserialized: an unauthenticated caller costs no parsing.
    """
    status = to_status(error)

    async def refuse(_request: object, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        _refusals.log(logging.INFO, "%s %s from %s: %s", status.code.name, method, context.peer(), error.message)
        await context.abort_with_status(status)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)
