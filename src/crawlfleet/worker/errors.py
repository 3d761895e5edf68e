"""The worker's exceptions, and the one boundary where gRPC errors become them.

Errors are typed by what the caller should do: a ``JobError`` says whether the job may be retried
and after how long; a ``CoordinatorUnavailable`` means back off and try again; a ``LeaseLost`` means
drop the named jobs and report nothing for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"
REASON_LEASE_LOST = "LEASE_LOST"
LOST_JOB_IDS_KEY = "job_ids"

# Codes after which the same call may succeed later: the coordinator restarts, drains, loses its
# database or a connection drops mid-call. Everything else is a rejection of the request itself.
TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.ABORTED,
    }
)


class WorkerError(Exception):
    """Base of every error the worker raises on purpose."""


class JobError(WorkerError):
    """Raised by a handler: the job failed, and whether (and when) it may be retried."""

    def __init__(self, message: str, *, error_type: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.retryable = retryable
        self.retry_after = retry_after


class WorkerCrashed(WorkerError):
    """A side task of the worker (lease loop, heartbeats, batcher) died: the process must exit."""


@dataclass(frozen=True)
class ErrorReason:
    """The machine-readable part of a failed call (``google.rpc.ErrorInfo``)."""

    reason: str = ""
    domain: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


class CoordinatorError(WorkerError):
    """A call to the coordinator failed and should not be retried as is."""

    def __init__(self, code: grpc.StatusCode, message: str, info: ErrorReason) -> None:
        super().__init__(f"{code.name}: {message}" + (f" ({info.reason})" if info.reason else ""))
        self.code = code
        self.message = message
        self.info = info

    @property
    def reason(self) -> str:
        """``ErrorInfo.reason``, e.g. ``LEASE_LOST``; empty when the status carried none."""
        return self.info.reason


class CoordinatorUnavailable(CoordinatorError):
    """Transient: back off and call again (restart, drain, network, database down)."""


class LeaseLost(CoordinatorError):
    """A lease token was stale: the lease expired or the job moved on. Report nothing for it."""

    @property
    def job_ids(self) -> frozenset[int]:
        """The jobs the coordinator named as lost; empty if it named none."""
        return parse_job_ids(self.info.metadata.get(LOST_JOB_IDS_KEY, ""))


def parse_job_ids(text: str) -> frozenset[int]:
    """Parses ``"1,2,3"``; malformed parts are skipped rather than trusted."""
    ids: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if part.lstrip("-").isdigit():
            ids.add(int(part))
    return frozenset(ids)


def error_reason(metadata: Iterable[tuple[str, str | bytes]] | None) -> ErrorReason:
    """Reads the first ``ErrorInfo`` from the ``grpc-status-details-bin`` trailer, if any.

    ``metadata`` is what ``AioRpcError.trailing_metadata()`` returns: pairs of key and value.
    Undecodable details give an empty reason: the status code alone still tells what to do.
    """
    if metadata is None:
        return ErrorReason()
    for key, value in metadata:
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes | bytearray):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(bytes(value))
        except DecodeError:
            return ErrorReason()
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                return ErrorReason(reason=str(info.reason), domain=str(info.domain), metadata=dict(info.metadata))
        return ErrorReason()
    return ErrorReason()


def translate_rpc_error(err: grpc.aio.AioRpcError) -> CoordinatorError:
    """The one place gRPC errors become worker errors."""
    code = err.code()
    info = error_reason(err.trailing_metadata())
    message = err.details() or ""
    if code == grpc.StatusCode.ABORTED and info.reason == REASON_LEASE_LOST:
        return LeaseLost(code, message, info)
    if code in TRANSIENT_CODES:
        return CoordinatorUnavailable(code, message, info)
    return CoordinatorError(code, message, info)
