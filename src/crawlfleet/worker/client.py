"""A thin async client of the coordinator's JobQueue: deadlines, channel options, error translation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import grpc
from google.protobuf.duration_pb2 import Duration

from crawlfleet.common.channel import ChannelSecurity, open_aio_channel
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import job_queue_pb2_grpc as pb_grpc
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.errors import translate_rpc_error

MAX_MESSAGE_BYTES = 32 * 1024 * 1024
# The coordinator keeps its long-poll below the call deadline; this margin covers the network.
LEASE_DEADLINE_MARGIN = 5.0
DEFAULT_CALL_TIMEOUT = 10.0

CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # Pings only while calls are active: the Lease long-poll nearly always is, and a dead connection
    # (coordinator host gone, partition) is then noticed in ~40 s instead of at the TCP timeout.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
    # Reconnect quickly after a coordinator restart; our own loop adds jittered backoff on top.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 5_000),
)

_Resp = TypeVar("_Resp")


def duration(seconds: float) -> Duration:
    """A ``google.protobuf.Duration`` of ``seconds``."""
    value = Duration()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


class CoordinatorClient:
    """JobQueue calls with per-call deadlines; failures raise ``worker.errors.CoordinatorError``."""

    def __init__(
        self,
        target: str,
        worker: pb.WorkerInfo,
        *,
        channel: grpc.aio.Channel | None = None,
        security: ChannelSecurity | None = None,
    ) -> None:
        self._channel = channel or open_aio_channel(target, security or ChannelSecurity(), CHANNEL_OPTIONS)
        self._stub = pb_grpc.JobQueueStub(self._channel)
        self._worker = worker

    @property
    def worker(self) -> pb.WorkerInfo:
        """Who this client leases as."""
        return self._worker

    async def lease(self, max_jobs: int, wait: float) -> pb.LeaseResponse:
        """Long-polls for up to ``max_jobs`` jobs for at most about ``wait`` seconds."""
        request = pb.LeaseRequest(worker=self._worker, max_jobs=max_jobs, wait=duration(wait))
        return await _call(self._stub.Lease, request, wait + LEASE_DEADLINE_MARGIN)

    async def heartbeat(
        self, leases: Sequence[pb.LeaseRef], deadline: float = DEFAULT_CALL_TIMEOUT
    ) -> pb.HeartbeatResponse:
        """Extends all ``leases``; the answer has one state per lease, in request order."""
        request = pb.HeartbeatRequest(worker_id=self._worker.worker_id, leases=leases)
        return await _call(self._stub.Heartbeat, request, deadline)

    async def complete(self, jobs: Sequence[pb.CompletedJob], deadline: float = DEFAULT_CALL_TIMEOUT) -> None:
        """Completes ``jobs`` all or nothing; raises ``LeaseLost`` naming stale jobs."""
        await _call(self._stub.Complete, pb.CompleteRequest(jobs=jobs), deadline)

    async def fail(self, request: pb.FailRequest, deadline: float = DEFAULT_CALL_TIMEOUT) -> pb.FailResponse:
        """Reports a failed attempt, or releases the job when ``request.release`` is set."""
        return await _call(self._stub.Fail, request, deadline)

    async def report_robots(
        self, request: pb.ReportRobotsRequest, deadline: float = DEFAULT_CALL_TIMEOUT
    ) -> pb.ReportRobotsResponse:
        """Reports the robots.txt a lease with ``fetch_robots`` fetched; raises ``LeaseLost`` if the
        lease is gone."""
        return await _call(self._stub.ReportRobots, request, deadline)

    async def get_robots(self, host: str, deadline: float = DEFAULT_CALL_TIMEOUT) -> pb.GetRobotsResponse:
        """The robots.txt the fleet holds for ``host``."""
        return await _call(self._stub.GetRobots, pb.GetRobotsRequest(host=host), deadline)

    async def find_stored_images(
        self, sha256s: Sequence[str], deadline: float = DEFAULT_CALL_TIMEOUT
    ) -> Sequence[jobs_pb2.ImageResult]:
        """The images among ``sha256s`` the fleet has stored (metadata, thumbnails without bytes)."""
        response = await _call(self._stub.FindStoredImages, pb.FindStoredImagesRequest(sha256s=sha256s), deadline)
        return response.images

    async def close(self) -> None:
        """Closes the channel; calls still in flight are cancelled."""
        await self._channel.close()


async def _call(method: Callable[..., Awaitable[_Resp]], request: object, deadline: float) -> _Resp:
    try:
        return await method(request, timeout=deadline)
    except grpc.aio.AioRpcError as err:
        raise translate_rpc_error(err) from err
