from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from crawlfleet.worker.errors import CoordinatorError, CoordinatorUnavailable, LeaseLost, translate_rpc_error

STATUS_DETAILS_KEY = "grpc-status-details-bin"


def rpc_error(code: grpc.StatusCode, reason: str | None = None, **metadata: str) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata()
    if reason is not None:
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="crawlfleet.v1", metadata=metadata))
        status = status_pb2.Status(code=code.value[0], message="boom", details=[detail])
        trailing = grpc.aio.Metadata((STATUS_DETAILS_KEY, status.SerializeToString()))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details="boom")


def test_lease_lost_names_the_lost_jobs() -> None:
    err = translate_rpc_error(rpc_error(grpc.StatusCode.ABORTED, "LEASE_LOST", job_ids="1,22"))
    assert isinstance(err, LeaseLost)
    assert err.reason == "LEASE_LOST"
    assert err.info.domain == "crawlfleet.v1"
    assert err.job_ids == {1, 22}


def test_draining_is_transient() -> None:
    err = translate_rpc_error(rpc_error(grpc.StatusCode.UNAVAILABLE, "DRAINING"))
    assert isinstance(err, CoordinatorUnavailable)
    assert err.reason == "DRAINING"


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_transport_failures_without_details_are_transient(code: grpc.StatusCode) -> None:
    err = translate_rpc_error(rpc_error(code))
    assert isinstance(err, CoordinatorUnavailable)
    assert err.reason == ""


def test_rejections_are_not_transient() -> None:
    err = translate_rpc_error(rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", field="max_jobs"))
    assert type(err) is CoordinatorError
    assert err.info.metadata == {"field": "max_jobs"}


def test_aborted_without_lease_lost_is_not_lease_lost() -> None:
    err = translate_rpc_error(rpc_error(grpc.StatusCode.ABORTED, "SOMETHING_ELSE"))
    assert not isinstance(err, LeaseLost)
