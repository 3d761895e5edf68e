"""Client channels against a real loopback gRPC server: the bearer token reaches the server on unary
and server-streaming calls, from blocking and asyncio channels, over plain TCP and over TLS."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import NamedTuple

import grpc
import pytest

from crawlfleet.common.channel import ChannelSecurity, CredentialsError, open_aio_channel, open_channel
from tests.certs import Pki, make_pki

SERVICE = "crawlfleet.test.Echo"
UNARY = f"/{SERVICE}/Authorization"
STREAM = f"/{SERVICE}/AuthorizationStream"
STREAM_MESSAGES = 3
TIMEOUT = 10.0
TOKEN = "s3cret-token"


def _header(request: bytes, context: grpc.ServicerContext) -> bytes:
    """The values the server saw of the header the request names ("" when absent), as the response."""
    name = request.decode() or "authorization"
    values = [value for key, value in context.invocation_metadata() if key == name]
    return ",".join(str(value) for value in values).encode()


def _unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    return _header(request, context)


def _stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    for _ in range(STREAM_MESSAGES):
        yield _header(request, context)


class EchoServer(NamedTuple):
    address: str
    pki: Pki | None


def _serve(pki: Pki | None) -> Iterator[EchoServer]:
    # No (de)serializers: requests and responses are raw bytes.
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Authorization": grpc.unary_unary_rpc_method_handler(_unary),
            "AuthorizationStream": grpc.unary_stream_rpc_method_handler(_stream),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
    if pki is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        credentials = grpc.ssl_server_credentials([(pki.server_key.read_bytes(), pki.server_cert.read_bytes())])
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield EchoServer(f"127.0.0.1:{port}", pki)
    finally:
        server.stop(None).wait()


@pytest.fixture(params=["plain", "tls"])
def echo_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EchoServer]:
    yield from _serve(make_pki(tmp_path) if request.param == "tls" else None)


def unary(channel: grpc.Channel) -> grpc.UnaryUnaryMultiCallable[bytes, bytes]:
    return channel.unary_unary(UNARY)


def stream(channel: grpc.Channel) -> grpc.UnaryStreamMultiCallable[bytes, bytes]:
    return channel.unary_stream(STREAM)


def aio_unary(channel: grpc.aio.Channel) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
    return channel.unary_unary(UNARY)


def aio_stream(channel: grpc.aio.Channel) -> grpc.aio.UnaryStreamMultiCallable[bytes, bytes]:
    return channel.unary_stream(STREAM)


def security(server: EchoServer, token: str | None) -> ChannelSecurity:
    return ChannelSecurity(token=token, tls_ca=server.pki.ca if server.pki is not None else None)


@pytest.mark.parametrize("token", [TOKEN, None])
def test_blocking_channel_sends_the_token(echo_server: EchoServer, token: str | None) -> None:
    expected = f"Bearer {token}".encode() if token else b""
    with open_channel(echo_server.address, security(echo_server, token)) as channel:
        assert unary(channel)(b"", timeout=TIMEOUT) == expected
        assert list(stream(channel)(b"", timeout=TIMEOUT)) == [expected] * STREAM_MESSAGES


@pytest.mark.parametrize("token", [TOKEN, None])
async def test_aio_channel_sends_the_token(echo_server: EchoServer, token: str | None) -> None:
    expected = f"Bearer {token}".encode() if token else b""
    async with open_aio_channel(echo_server.address, security(echo_server, token)) as channel:
        assert await aio_unary(channel)(b"", timeout=TIMEOUT) == expected
        received = [message async for message in aio_stream(channel)(b"", timeout=TIMEOUT)]
        assert received == [expected] * STREAM_MESSAGES


def test_caller_metadata_is_kept_beside_the_token(echo_server: EchoServer) -> None:
    metadata = (("x-request-id", "7"),)
    with open_channel(echo_server.address, security(echo_server, TOKEN)) as channel:
        echo = unary(channel)
        assert echo(b"x-request-id", timeout=TIMEOUT, metadata=metadata) == b"7"
        assert echo(b"authorization", timeout=TIMEOUT, metadata=metadata) == f"Bearer {TOKEN}".encode()


async def test_aio_caller_metadata_is_kept_beside_the_token(echo_server: EchoServer) -> None:
    metadata = (("x-request-id", "7"),)
    async with open_aio_channel(echo_server.address, security(echo_server, TOKEN)) as channel:
        echo = aio_unary(channel)
        assert await echo(b"x-request-id", timeout=TIMEOUT, metadata=metadata) == b"7"
        assert await echo(b"authorization", timeout=TIMEOUT, metadata=metadata) == f"Bearer {TOKEN}".encode()


def test_unreadable_tls_file_raises_credentials_error(tmp_path: Path) -> None:
    missing = ChannelSecurity(tls_ca=tmp_path / "missing.pem")
    with pytest.raises(CredentialsError, match="--tls-ca"):
        open_channel("127.0.0.1:1", missing)


async def test_aio_unreadable_tls_file_raises_credentials_error(tmp_path: Path) -> None:
    missing = ChannelSecurity(tls_cert=tmp_path / "missing.pem", tls_key=tmp_path / "missing.key")
    with pytest.raises(CredentialsError, match="--tls-key"):
        open_aio_channel("127.0.0.1:1", missing)
