"""The library's exceptions, typed by what the caller should do, and the one place gRPC errors become them.

Every exception the library raises on purpose is a ``ClientError``. A failed call becomes the
subclass that says what to do next: fix the request (``InvalidArgument``, with the offending
field), look elsewhere (``NotFound``), read the job again (``Conflict``), fix the credentials
(``Unauthenticated``, ``PermissionDenied``), or try again later (``Unavailable``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import grpc

from crawlfleet.client.models import JobOutcome
from crawlfleet.common.rpc_errors import error_details
from crawlfleet.v1 import crawls_pb2

_TLS_WORDS = ("ssl", "tls", "handshake", "certificate")


class ClientError(Exception):
    """Base of every error the client library raises.

    ``code`` is the gRPC status of the failed call (None for errors that are not a call's),
    ``reason`` and ``metadata`` the coordinator's machine-readable ``ErrorInfo`` (empty when the
    answer carried none, e.g. when the coordinator could not be reached at all).
    """

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.metadata: Mapping[str, str] = dict(metadata or {})

    @property
    def answered(self) -> bool:
        """Whether the coordinator itself answered with a reason (not the network or gRPC)."""
        return bool(self.reason)


class InvalidArgument(ClientError):
    """The coordinator rejected the request: fix it. ``field`` names the offending request field
    (``jobs[3].scrape.url``); for ``enqueue_many``, ``job_index`` is the position of the offending
    job in what the caller passed (the field counts within one batch)."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: grpc.StatusCode | None = grpc.StatusCode.INVALID_ARGUMENT,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, code=code, reason=reason, metadata=metadata)
        self.field = field
        self.job_index: int | None = None


class NotFound(ClientError):
    """The job (or crawl, or thumbnail) does not exist, or no longer: purged, or a wrong id. For
    a producer, another producer's jobs and crawls do not exist."""


class JobsNotFound(NotFound):
    """Some of the jobs to watch do not exist; ``job_ids`` lists them."""

    def __init__(self, job_ids: Iterable[int]) -> None:
        self.job_ids = tuple(sorted(job_ids))
        shown = ", ".join(map(str, self.job_ids[:10])) + (", ..." if len(self.job_ids) > 10 else "")
        noun = "job" if len(self.job_ids) == 1 else "jobs"
        super().__init__(f"{noun} {shown} {'does' if len(self.job_ids) == 1 else 'do'} not exist")


class Conflict(ClientError):
    """The job's state does not allow the operation (``FAILED_PRECONDITION``, ``ABORTED``): read it again."""


class Unauthenticated(ClientError):
    """No valid bearer token: pass ``token=`` (or set ``CRAWLFLEET_TOKEN``)."""


class PermissionDenied(ClientError):
    """The token is valid but its role may not make this call: use a token with the needed role."""


class Unavailable(ClientError):
    """Try again later: the coordinator cannot be reached, is draining, or lost its database.

    ``answered`` tells a coordinator that answered (draining, database down: ``reason`` says which)
    from one that could not be reached at all (down, wrong address, TLS mismatch).
    """

    @property
    def tls_failed(self) -> bool:
        """Whether the connection failed in the TLS handshake (a CA, certificate or TLS mismatch)."""
        return not self.answered and any(word in self.message.lower() for word in _TLS_WORDS)


class DeadlineExceeded(Unavailable):
    """The coordinator did not answer within the call's deadline (``call_timeout``)."""


class ResourceExhausted(ClientError):
    """The call was refused for its size or for a limit of the coordinator: send less, or later."""


class ConfigurationError(ClientError, ValueError):
    """The client cannot be set up as configured (an unreadable TLS file, a bad setting)."""


class WaitTimeout(ClientError):
    """``watch`` or ``wait`` ran out of time. ``finished`` maps the jobs that finished to their
    outcome; ``unfinished`` lists the ids still queued or leased (empty when the coordinator picked
    the jobs, with ``all_unfinished``), ``remaining`` counts them."""

    def __init__(
        self,
        timeout: float,
        finished: Mapping[int, JobOutcome],
        unfinished: Iterable[int],
        *,
        remaining: int | None = None,
    ) -> None:
        self.timeout = timeout
        self.finished = dict(finished)
        self.unfinished = tuple(sorted(unfinished))
        self.remaining = len(self.unfinished) if remaining is None else remaining
        super().__init__(
            f"{self.remaining} job(s) had not finished after {timeout:g}s ({len(self.finished)} finished meanwhile)"
        )


class CrawlWaitTimeout(WaitTimeout):
    """``wait_crawl`` ran out of time before the crawl ended. ``crawl`` is the crawl as last read
    (None when no read succeeded), ``remaining`` its jobs then queued or leased."""

    def __init__(self, timeout: float, crawl_id: int, crawl: crawls_pb2.Crawl | None) -> None:
        remaining = crawl.queued + crawl.leased if crawl is not None else 0
        super().__init__(timeout, {}, (), remaining=remaining)
        self.crawl_id = crawl_id
        self.crawl = crawl
        self.message = f"crawl {crawl_id} had not finished after {timeout:g}s ({remaining} job(s) queued or leased)"
        self.args = (self.message,)


_BY_CODE: Mapping[grpc.StatusCode, type[ClientError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: Conflict,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
}


def from_rpc_error(error: grpc.RpcError) -> ClientError:
    """The ``ClientError`` of a failed call (blocking or asyncio), from its code and ``ErrorInfo``."""
    code = _code(error)
    message = _details(error) or code.name
    info = error_details(error)
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(message, field=info.field, reason=info.reason, metadata=info.metadata)
    cls = _BY_CODE.get(code, ClientError)
    if cls is ClientError:
        message = f"the call failed with {code.name}: {message}"
    return cls(message, code=code, reason=info.reason, metadata=info.metadata)


def _code(error: grpc.RpcError) -> grpc.StatusCode:
    code = getattr(error, "code", None)
    value = code() if callable(code) else None
    return value if isinstance(value, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def _details(error: grpc.RpcError) -> str:
    details = getattr(error, "details", None)
    value = details() if callable(details) else None
    return value if isinstance(value, str) else ""
