"""Maps coordinator errors to gRPC status codes with machine-readable details, in one place."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from crawlfleet.common import limits
from crawlfleet.common.ratelimit import RateLimitedLog
from crawlfleet.coordinator.errors import (
    CoordinatorError,
    DatabaseUnavailable,
    Draining,
    ImageNotStored,
    InternalError,
    InvalidArgument,
    LeaseLost,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ResultMismatch,
    Unauthenticated,
    WrongState,
)

log = logging.getLogger(__name__)
# A caller can trigger an unexpected error at will: log each with its traceback, but not without bound.
_unexpected = RateLimitedLog(log)
DOMAIN = "crawlfleet.v1"

_CODES: list[tuple[type[CoordinatorError], grpc.StatusCode]] = [
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (LeaseLost, grpc.StatusCode.ABORTED),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (WrongState, grpc.StatusCode.FAILED_PRECONDITION),
    (ResultMismatch, grpc.StatusCode.FAILED_PRECONDITION),
    (ImageNotStored, grpc.StatusCode.FAILED_PRECONDITION),
    (Draining, grpc.StatusCode.UNAVAILABLE),
    (DatabaseUnavailable, grpc.StatusCode.UNAVAILABLE),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (InternalError, grpc.StatusCode.INTERNAL),
]


def status_code_of(error: CoordinatorError) -> grpc.StatusCode:
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL


def to_status(error: CoordinatorError) -> grpc.Status:
    """A grpc.Status carrying ErrorInfo (and BadRequest for invalid fields)."""
    code = status_code_of(error)
    details = []
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=error.metadata))
    details.append(info)
    if isinstance(error, InvalidArgument):
        bad = any_pb2.Any()
        bad.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=error.field, description=error.message)
                ]
            )
        )
        details.append(bad)
    if isinstance(error, ResourceExhausted) and error.retry_after is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(round(error.retry_after * 1e9))
        hint = any_pb2.Any()
        hint.Pack(retry)
        details.append(hint)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=error.message, details=details)
    converted: grpc.Status = rpc_status.to_status(status)
    return converted


Request = TypeVar("Request")
Response = TypeVar("Response")
Handler = Callable[[Any, Request, grpc.aio.ServicerContext[Request, Response]], Awaitable[Response]]
StreamHandler = Callable[[Any, Request, grpc.aio.ServicerContext[Request, Response]], AsyncIterator[Response]]


def check_bounds(request: object) -> None:
    """Refuse a request with a field past the API's bounds (common/limits.py) before any work."""
    if not isinstance(request, Message):
        return
    try:
        limits.check(request)
    except limits.LimitExceeded as exc:
        raise InvalidArgument(exc.field, exc.message, job_id=exc.job_id) from None


def checks_own_bounds(method: Handler[Request, Response]) -> Handler[Request, Response]:
    """Mark an RPC method that checks its request's bounds itself, as it goes (under
    `handles_errors`, which then does not walk the request first). Complete does: most of its
    jobs carry results with nothing to bound, and it knows which before any walk would."""
    setattr(method, _OWN_BOUNDS, True)
    return method


_OWN_BOUNDS = "_crawlfleet_checks_own_bounds"


def handles_errors(method: Handler[Request, Response]) -> Handler[Request, Response]:
    """Decorate an RPC method: the request's bounds are checked first (unless the method
    `checks_own_bounds`); a CoordinatorError aborts the call with its status, any other exception
    with INTERNAL and a generic message (the details go to the log, never to the caller)."""
    walk_first = not getattr(method, _OWN_BOUNDS, False)

    @functools.wraps(method)
    async def wrapper(self: Any, request: Request, context: grpc.aio.ServicerContext[Request, Response]) -> Response:
        try:
            if walk_first:
                check_bounds(request)
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort_for(method.__name__, exc, context)

    return wrapper


def handles_stream_errors(method: StreamHandler[Request, Response]) -> StreamHandler[Request, Response]:
    """Decorate a server-streaming RPC method: a CoordinatorError ends the stream with its status."""

    @functools.wraps(method)
    async def wrapper(
        self: Any, request: Request, context: grpc.aio.ServicerContext[Request, Response]
    ) -> AsyncIterator[Response]:
        try:
            check_bounds(request)
            async for response in method(self, request, context):
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort_for(method.__name__, exc, context)

    return wrapper


async def _abort_for(name: str, exc: Exception, context: grpc.aio.ServicerContext[Any, Any]) -> NoReturn:
    """Ends the call of RPC ``name`` for ``exc``: a CoordinatorError with its own status, anything
    else with INTERNAL and a generic message (the details go to the log only)."""
    if isinstance(exc, CoordinatorError):
        await _abort(name, exc, context)
    else:
        _unexpected.log(logging.ERROR, "%s failed unexpectedly", name, exc_info=exc)
        await _abort(name, InternalError(), context)
    raise AssertionError("abort_with_status returned") from exc


async def _abort(name: str, error: CoordinatorError, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    status = to_status(error)
    if status.code is grpc.StatusCode.UNAVAILABLE:
        log.warning("%s: %s", name, error.message)
    await context.abort_with_status(status)
