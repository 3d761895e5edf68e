"""Reading ErrorInfo from failed calls built in memory; edge cases of untrustworthy details."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from crawlfleet.common.rpc_errors import ErrorDetails, error_details, error_info, parse_job_ids

DETAILS_KEY = "grpc-status-details-bin"


def status_bytes(code: grpc.StatusCode, message: str, *details: object) -> bytes:
    packed = []
    for detail in details:
        item = any_pb2.Any()
        item.Pack(detail)  # type: ignore[arg-type]
        packed.append(item)
    status = status_pb2.Status(code=code.value[0], message=message, details=packed)
    data: bytes = status.SerializeToString()
    return data


def aio_error(code: grpc.StatusCode, message: str, trailers: tuple[tuple[str, str | bytes], ...]) -> grpc.RpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailers), details=message)


def test_reads_reason_domain_and_metadata() -> None:
    info = error_details_pb2.ErrorInfo(reason="LEASE_LOST", domain="crawlfleet.v1", metadata={"job_ids": "3,1"})
    retry = error_details_pb2.RetryInfo()
    code = grpc.StatusCode.ABORTED
    error = aio_error(code, "stale", ((DETAILS_KEY, status_bytes(code, "stale", retry, info)),))
    details = error_details(error)
    assert details == ErrorDetails(reason="LEASE_LOST", domain="crawlfleet.v1", metadata={"job_ids": "3,1"})
    assert details.job_ids == {1, 3} and details.field is None
    assert error_info(error) == info


def test_field_of_an_invalid_argument() -> None:
    code = grpc.StatusCode.INVALID_ARGUMENT
    info = error_details_pb2.ErrorInfo(reason="INVALID_FIELD", metadata={"field": "jobs[2].scrape.url"})
    error = aio_error(code, "bad url", ((DETAILS_KEY, status_bytes(code, "bad url", info)),))
    assert error_details(error).field == "jobs[2].scrape.url"


@pytest.mark.parametrize(
    "trailers",
    [
        (),
        (("other", "x"),),
        ((DETAILS_KEY, b"\xff\xff not a proto"),),
        # Details that disagree with the call's own code are not trusted.
        ((DETAILS_KEY, status_bytes(grpc.StatusCode.NOT_FOUND, "boom", error_details_pb2.ErrorInfo(reason="X"))),),
        ((DETAILS_KEY, status_bytes(grpc.StatusCode.UNAVAILABLE, "boom")),),  # a status without ErrorInfo
    ],
)
def test_missing_or_untrustworthy_details_are_empty(trailers: tuple[tuple[str, str | bytes], ...]) -> None:
    error = aio_error(grpc.StatusCode.UNAVAILABLE, "boom", trailers)
    assert error_details(error) == ErrorDetails()
    assert error_info(error) is None


def test_a_bare_rpc_error_has_no_details() -> None:
    assert error_details(grpc.RpcError()) == ErrorDetails()


def test_parse_job_ids_skips_garbage() -> None:
    assert parse_job_ids("1, 2,x,,3") == {1, 2, 3}
    assert parse_job_ids("") == frozenset()
