"""ErrorInfo read from real failed calls of a loopback server, blocking and asyncio alike."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from crawlfleet.common.channel import ChannelSecurity, open_aio_channel, open_channel
from crawlfleet.common.rpc_errors import ErrorDetails, error_details

SERVICE = "crawlfleet.test.Refuse"
METHOD = f"/{SERVICE}/Refuse"
TIMEOUT = 10.0
EXPECTED = ErrorDetails(reason="LEASE_LOST", domain="crawlfleet.v1", metadata={"job_ids": "7,9"})


def _refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason="LEASE_LOST", domain="crawlfleet.v1", metadata={"job_ids": "7,9"}))
    status = status_pb2.Status(code=grpc.StatusCode.ABORTED.value[0], message="lease lost", details=[detail])
    context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("abort_with_status returns only by raising")


@pytest.fixture
def address() -> Iterator[str]:
    handler = grpc.method_handlers_generic_handler(SERVICE, {"Refuse": grpc.unary_unary_rpc_method_handler(_refuse)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None).wait()


def test_blocking_call(address: str) -> None:
    with open_channel(address, ChannelSecurity()) as channel:
        refuse: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(METHOD)
        with pytest.raises(grpc.RpcError) as caught:
            refuse(b"", timeout=TIMEOUT)
    assert error_details(caught.value) == EXPECTED
    assert error_details(caught.value).job_ids == {7, 9}


async def test_aio_call(address: str) -> None:
    async with open_aio_channel(address, ChannelSecurity()) as channel:
        refuse: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(METHOD)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await refuse(b"", timeout=TIMEOUT)
    assert error_details(caught.value) == EXPECTED
