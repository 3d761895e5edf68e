"""Conversions between protobuf well-known types, request fields and Python values."""

from __future__ import annotations

import datetime as dt
import uuid

from asyncpg.pgproto.pgproto import UUID as FastUUID
from google.protobuf import duration_pb2, timestamp_pb2

from crawlfleet.common.hosts import is_host
from crawlfleet.coordinator.errors import InvalidArgument

UTC = dt.UTC


def timestamp(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


def seconds(value: duration_pb2.Duration) -> float:
    return value.seconds + value.nanos / 1e9


def lease_token(value: str, field: str) -> uuid.UUID:
    """Parse a lease token or name the offending field."""
    if not value:
        raise InvalidArgument(field, "is required")
    try:
        # asyncpg's UUID (a uuid.UUID, parsed in C): a tenth of uuid.UUID's cost, once per job of
        # every Complete. It takes the hex digits with or without hyphens, not braces or "urn:".
        token: uuid.UUID = FastUUID(value)
    except ValueError:
        raise InvalidArgument(field, "is not a lease token issued by Lease") from None
    return token


def host(value: str, field: str) -> str:
    """A host as leases name it (HostDirectives.name: `shop.example`, `shop.example:8443`)."""
    if not value:
        raise InvalidArgument(field, "is required")
    if not is_host(value):
        raise InvalidArgument(field, "is not a host name as leases spell it (lower case, with a non-default port)")
    return value


def positive_id(value: int, field: str) -> int:
    if value <= 0:
        raise InvalidArgument(field, "must be a positive job id")
    return value


def bounded_text(value: str, field: str, *, limit: int, required: bool = False) -> str:
    if required and not value:
        raise InvalidArgument(field, "is required")
    if len(value) > limit:
        raise InvalidArgument(field, f"is longer than {limit} characters")
    return value


def optional_seconds(
    value: duration_pb2.Duration, present: bool, field: str, *, default: float, maximum: float
) -> float:
    """A duration field in seconds between 0 and ``maximum``, or default when unset."""
    if not present:
        return default
    result = seconds(value)
    if not 0 <= result <= maximum:
        raise InvalidArgument(field, f"must be between 0 and {maximum:g} seconds")
    return result
