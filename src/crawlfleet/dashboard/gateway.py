"""The dashboard's way to the coordinators: one channel per configured address, each call made with
the signed-in user's token (so the coordinator's role checks decide), and gRPC errors turned into
HTTP ones at this one boundary.

Coordinators of one fleet share the database, so any of them answers alike: calls go to the one
that answered last, and move on to the next when it is unreachable.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from crawlfleet.common.channel import ChannelSecurity, bearer_metadata, open_aio_channel
from crawlfleet.v1 import admin_pb2_grpc, crawls_pb2_grpc

log = logging.getLogger(__name__)

Response = TypeVar("Response")
Metadata = tuple[tuple[str, str], ...]
# Whichever coordinator is asked, these say it cannot answer now: another one may.
_FAIL_OVER = frozenset({grpc.StatusCode.UNAVAILABLE})
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class DashboardError(Exception):
    """What a page shows instead of its content: an HTTP status and why."""

    def __init__(self, status: int, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def from_rpc_error(error: grpc.aio.AioRpcError) -> DashboardError:
    code = error.code()
    return DashboardError(HTTP_STATUS.get(code, 502), error.details() or code.name, code=code.name)


@dataclass(frozen=True)
class Stubs:
    """The services of one coordinator, on one channel."""

    admin: admin_pb2_grpc.AdminAsyncStub
    crawls: crawls_pb2_grpc.CrawlsAsyncStub


Call = Callable[[Stubs, Metadata], Awaitable[Response]]


class Coordinators:
    """Channels to the configured coordinators; ``call`` runs an RPC as a user."""

    def __init__(self, targets: tuple[str, ...], security: ChannelSecurity, *, timeout: float) -> None:
        self.targets = targets
        self.timeout = timeout
        self._channels = [open_aio_channel(target, security) for target in targets]
        self._stubs = [
            Stubs(admin_pb2_grpc.AdminStub(channel), crawls_pb2_grpc.CrawlsStub(channel)) for channel in self._channels
        ]
        self._current = 0

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def call(self, token: str | None, rpc: Call[Response]) -> Response:
        """``rpc`` on the coordinator that answered last, or on the next ones while it is unreachable.

        Raises ``DashboardError`` with the coordinator's status turned into HTTP's.
        """
        metadata: Metadata = (bearer_metadata(token),) if token else ()
        last: grpc.aio.AioRpcError | None = None
        for step in range(len(self._stubs)):
            index = (self._current + step) % len(self._stubs)
            try:
                response = await rpc(self._stubs[index], metadata)
            except grpc.aio.AioRpcError as error:
                if error.code() not in _FAIL_OVER:
                    raise from_rpc_error(error) from None
                log.warning("coordinator %s unavailable: %s", self.targets[index], error.details())
                last = error
                continue
            self._current = index
            return response
        assert last is not None
        raise from_rpc_error(last) from None

    def stream(
        self, token: str | None, open_stream: Callable[[Stubs, Metadata], AsyncIterator[Response]]
    ) -> AsyncIterator[Response]:
        """A server stream from the coordinator that answered last (no failover mid-stream)."""
        metadata: Metadata = (bearer_metadata(token),) if token else ()
        return open_stream(self._stubs[self._current], metadata)
