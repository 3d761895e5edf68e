"""Failed calls built in memory, as the client library receives them."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

DETAILS_KEY = "grpc-status-details-bin"


def rpc_error(code: grpc.StatusCode, message: str, reason: str = "", **metadata: str) -> grpc.RpcError:
    """A failed call with ``code`` and, when ``reason`` is given, the coordinator's ErrorInfo."""
    trailers: list[tuple[str, str | bytes]] = []
    if reason:
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="crawlfleet.v1", metadata=metadata))
        status = status_pb2.Status(code=code.value[0], message=message, details=[info])
        trailers.append((DETAILS_KEY, status.SerializeToString()))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailers), details=message)
