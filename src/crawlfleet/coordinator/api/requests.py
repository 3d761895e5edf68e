"""Parsing a request's bytes, for the interceptors that take them raw (metrics, the request-bytes
budget): a malformed message is answered INVALID_ARGUMENT in one place, whichever parses it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc

from crawlfleet.common.ratelimit import RateLimitedLog
from crawlfleet.coordinator.api.status import to_status
from crawlfleet.coordinator.errors import InvalidArgument

log = logging.getLogger(__name__)

Deserializer = Callable[[bytes], Any]

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
