"""Parsing a request's bytes, for the interceptors that take them raw (metrics, the request-bytes
budget): a malformed message is answered INVALID_ARGUMENT in one place, whichever parses it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import grpc

from crawlfleet.common.ratelimit import RateLimitedLog
from crawlfleet.coordinator.api.status import to_status
from crawlfleet.coordinator.errors import InvalidArgument

log = logging.getLogger(__name__)

Deserializer = Callable[[bytes], Any]
Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Any, Any] | None"]]

# A client can send garbage in a loop: its lines must not flood the log.
_malformed = RateLimitedLog(log)
_MALFORMED = to_status(InvalidArgument("request", "is not a valid protobuf message of the method's request type"))


async def parse_request(
    method: str, deserializer: Deserializer, raw: bytes, context: grpc.aio.ServicerContext[Any, Any]
) -> Any:
    """The request message of ``raw``; a call whose bytes do not parse is aborted INVALID_ARGUMENT."""
    try:
        return deserializer(raw)
    except Exception as exc:  # protobuf raises DecodeError, and other errors for some malformed input
        _malformed.log(logging.INFO, "%s: malformed request from %s: %s", method, context.peer(), type(exc).__name__)
    await context.abort_with_status(_MALFORMED)
    raise AssertionError("abort_with_status returned")


class RawUnaryInterceptor(grpc.aio.ServerInterceptor):
    """Base of the interceptors that wrap unary handlers and take the request's bytes themselves
    (parsing them with ``parse_request``). Each method's handler is wrapped once, not per call.
    Subclasses say how in ``wrap``; streaming methods pass through."""

    def __init__(self) -> None:
        # method -> (the handler as it came, its wrapper)
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    def wrap(self, method: str, behavior: Behavior, deserializer: Deserializer | None) -> Behavior:
        """The behaviour that replaces ``behavior``; it gets raw bytes (parse them with
        ``deserializer`` when it is not None: then ``behavior`` wants the message)."""
        raise NotImplementedError

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped: grpc.RpcMethodHandler[Any, Any] = grpc.unary_unary_rpc_method_handler(
            # The stubs type handlers as synchronous; a grpc.aio server's are coroutine functions.
            self.wrap(method.lstrip("/"), cast(Behavior, handler.unary_unary), handler.request_deserializer),
            request_deserializer=None,
            response_serializer=handler.response_serializer,
        )
        self._wrapped[method] = (handler, wrapped)
        return wrapped
