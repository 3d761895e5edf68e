"""The channel to the coordinator, and the one place gRPC errors become messages that say what to do.

The CLI uses synchronous gRPC: commands make one call after another, and a blocking client is the
simplest thing that can be run (and tested) from any thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from crawlfleet.cli.errors import EXIT_FAILED, EXIT_UNREACHABLE, CliError, UsageError
from crawlfleet.cli.settings import CliSettings
from crawlfleet.v1 import admin_pb2_grpc, job_queue_pb2_grpc

Request = TypeVar("Request")
Response = TypeVar("Response")
MAX_RECEIVE_BYTES = 64 * 1024 * 1024  # a page of results with their main text can be large
_REACH_HINT = "is it running? (--coordinator / CRAWLFLEET_COORDINATOR)"
_TLS_WORDS = ("ssl", "tls", "handshake", "certificate")


class Client:
    """A channel to the coordinator with its two services; close it (or use ``with``) when done."""

    def __init__(self, settings: CliSettings) -> None:
        self.settings = settings
        self.address = settings.coordinator
        self._channel = open_channel(settings)
        self.queue = job_queue_pb2_grpc.JobQueueStub(self._channel)
        self.admin = admin_pb2_grpc.AdminStub(self._channel)
        # Over TLS the token travels as call credentials; gRPC refuses those on plain channels,
        # where it goes into each call's metadata instead.
        self._metadata: tuple[tuple[str, str], ...] = ()
        if settings.token is not None and not settings.uses_tls:
            self._metadata = (("authorization", f"Bearer {settings.token}"),)

    def call(
        self,
        method: grpc.UnaryUnaryMultiCallable[Request, Response],
        request: Request,
        *,
        timeout: float | None = None,
    ) -> Response:
        """One unary call with the deadline and credentials; a failure raises ``CliError``."""
        with self.translated():
            return method(request, timeout=timeout or self.settings.call_timeout, metadata=self._metadata)

    @contextmanager
    def translated(self) -> Iterator[None]:
        try:
            yield
        except grpc.RpcError as error:
            raise describe_error(error, self.settings) from None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def open_channel(settings: CliSettings) -> grpc.Channel:
    options = [("grpc.max_receive_message_length", MAX_RECEIVE_BYTES)]
    if not settings.uses_tls:
        return grpc.insecure_channel(settings.coordinator, options=options)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(settings.tls_ca, "--tls-ca"),
        private_key=_read(settings.tls_key, "--tls-key"),
        certificate_chain=_read(settings.tls_cert, "--tls-cert"),
    )
    if settings.token is not None:
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.access_token_call_credentials(settings.token)
        )
    return grpc.secure_channel(settings.coordinator, credentials, options=options)


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo of a failed call's status details, if the coordinator sent one."""
    try:
        status = rpc_status.from_call(error)
    except ValueError:
        return None
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    return None


def describe_error(error: grpc.RpcError, settings: CliSettings) -> CliError:
    """What went wrong, and what to do about it."""
    code: grpc.StatusCode = error.code()
    details: str = error.details() or code.name
    info = error_info(error)
    address = settings.coordinator
    if code is grpc.StatusCode.UNAVAILABLE:
        if info is not None:  # the coordinator answered: draining, or its database is down
            return CliError(f"the coordinator at {address} is unavailable: {details}", EXIT_UNREACHABLE)
        if any(word in details.lower() for word in _TLS_WORDS):
            return CliError(
                f"TLS with the coordinator at {address} failed: {details} (check --tls-ca, --tls-cert, --tls-key)",
                EXIT_UNREACHABLE,
            )
        hint = "" if settings.uses_tls else "; if it uses TLS, pass --tls-ca or --tls"
        return CliError(f"cannot reach the coordinator at {address}: {_REACH_HINT}{hint}", EXIT_UNREACHABLE)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return CliError(
            f"the coordinator at {address} did not answer within {settings.call_timeout:g}s (--call-timeout)",
            EXIT_UNREACHABLE,
        )
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return CliError(
            f"the coordinator at {address} refused the call: {details}; set --token or CRAWLFLEET_TOKEN",
            EXIT_UNREACHABLE,
        )
    if code is grpc.StatusCode.PERMISSION_DENIED:
        return CliError(f"permission denied: {details}; use a token with the admin role", EXIT_UNREACHABLE)
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        field = info.metadata.get("field") if info is not None else None
        where = f" (field {field})" if field and not details.startswith(field) else ""
        return CliError(f"the coordinator rejected the request: {details}{where}", EXIT_FAILED, field=field)
    if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED):
        return CliError(details, EXIT_FAILED)
    return CliError(f"the call failed with {code.name}: {details}", EXIT_FAILED)


def _read(path: Path | None, flag: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {flag} {path}: {exc.strerror}") from None
