"""The worker's exceptions, and the one boundary where gRPC errors become them.

Errors are typed by what the caller should do: a ``JobError`` says whether the job may be retried
and after how long; a ``CoordinatorUnavailable`` means back off and try again; a ``LeaseLost`` means
drop the named jobs and report nothing for them.
"""

from __future__ import annotations

import grpc

from crawlfleet.common.rpc_errors import REASON_LEASE_LOST, ErrorDetails, error_details

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


# Of those, the codes of an unexpected failure on the coordinator's side (see CoordinatorFault).
FAULT_CODES = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})


class WorkerError(Exception):
    """Base of every error the worker raises on purpose."""


class JobError(WorkerError):
    """Raised by a handler: the job failed, and whether (and when) it may be retried. With
    ``release`` the job is given back uncharged instead: it could not run, through no fault of its
    own (its host's robots.txt is unreachable)."""

    def __init__(
        self,
        message: str,
        *,
        error_type: str,
        retryable: bool,
        retry_after: float | None = None,
        release: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.retryable = retryable
        self.retry_after = retry_after
        self.release = release


class WorkerCrashed(WorkerError):
    """A side task of the worker (lease loop, heartbeats, batcher) died: the process must exit."""


class CoordinatorError(WorkerError):
    """A call to the coordinator failed and should not be retried as is."""

    def __init__(self, code: grpc.StatusCode, message: str, info: ErrorDetails) -> None:
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


class CoordinatorFault(CoordinatorUnavailable):
    """The coordinator failed on the call unexpectedly (``UNKNOWN``, ``INTERNAL``): perhaps passing (a
    restart mid-call), perhaps this very request (content it cannot handle). Retried a few times,
    then treated as a refusal (``RepeatedFault``), so one poisoned report cannot be resent forever."""


class RepeatedFault(CoordinatorError):
    """A call failed with ``CoordinatorFault`` too many times in a row: treat it as refused."""


class LeaseLost(CoordinatorError):
    """A lease token was stale: the lease expired or the job moved on. Report nothing for it."""

    @property
    def job_ids(self) -> frozenset[int]:
        """The jobs the coordinator named as lost; empty if it named none."""
        return self.info.job_ids


def translate_rpc_error(err: grpc.aio.AioRpcError) -> CoordinatorError:
    """The one place gRPC errors become worker errors."""
    code = err.code()
    info = error_details(err)
    message = err.details() or ""
    if code == grpc.StatusCode.ABORTED and info.reason == REASON_LEASE_LOST:
        return LeaseLost(code, message, info)
    if code in FAULT_CODES:
        return CoordinatorFault(code, message, info)
    if code in TRANSIENT_CODES:
        return CoordinatorUnavailable(code, message, info)
    return CoordinatorError(code, message, info)
