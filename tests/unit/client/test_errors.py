"""Failed calls become the ClientError that says what to do, with the coordinator's reason and field."""

from __future__ import annotations

import grpc
import pytest

from crawlfleet.client import (
    ClientError,
    Conflict,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from crawlfleet.client.errors import from_rpc_error
from tests.unit.client.rpc import rpc_error


def test_invalid_argument_names_the_field() -> None:
    error = from_rpc_error(
        rpc_error(
            grpc.StatusCode.INVALID_ARGUMENT,
            "jobs[2].scrape.url: not http(s)",
            "INVALID_FIELD",
            field="jobs[2].scrape.url",
        )
    )
    assert isinstance(error, InvalidArgument)
    assert error.field == "jobs[2].scrape.url" and error.reason == "INVALID_FIELD"
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT and error.message == "jobs[2].scrape.url: not http(s)"
    assert error.job_index is None


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (grpc.StatusCode.NOT_FOUND, NotFound),
        (grpc.StatusCode.FAILED_PRECONDITION, Conflict),
        (grpc.StatusCode.ABORTED, Conflict),
        (grpc.StatusCode.UNAUTHENTICATED, Unauthenticated),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDenied),
        (grpc.StatusCode.UNAVAILABLE, Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceeded),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhausted),
    ],
)
def test_codes_map_to_what_to_do(code: grpc.StatusCode, kind: type[ClientError]) -> None:
    error = from_rpc_error(rpc_error(code, "no"))
    assert type(error) is kind and error.code is code and error.message == "no"


def test_a_missed_deadline_is_a_retry_later_error() -> None:
    assert issubclass(DeadlineExceeded, Unavailable) and not issubclass(ResourceExhausted, Unavailable)


def test_unavailable_tells_an_answer_from_no_connection() -> None:
    draining = from_rpc_error(rpc_error(grpc.StatusCode.UNAVAILABLE, "shutting down", "DRAINING"))
    assert isinstance(draining, Unavailable) and draining.answered and draining.reason == "DRAINING"
    refused = from_rpc_error(rpc_error(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"))
    assert isinstance(refused, Unavailable) and not refused.answered and not refused.tls_failed
    handshake = from_rpc_error(
        rpc_error(grpc.StatusCode.UNAVAILABLE, "Ssl handshake failed: CERTIFICATE_VERIFY_FAILED")
    )
    assert isinstance(handshake, Unavailable) and handshake.tls_failed


def test_other_codes_are_the_base_error_with_the_code_in_the_message() -> None:
    error = from_rpc_error(rpc_error(grpc.StatusCode.INTERNAL, "boom"))
    assert type(error) is ClientError and error.message == "the call failed with INTERNAL: boom"
