"""Bearer tokens, roles and TLS through a real in-process coordinator (and worker)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from crawlfleet.common.channel import ChannelSecurity
from crawlfleet.coordinator.security.auth import Role, TokenEntry, hash_token
from crawlfleet.coordinator.security.settings import SecuritySettings
from crawlfleet.v1 import admin_pb2, admin_pb2_grpc
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import job_queue_pb2_grpc as pb_grpc
from crawlfleet.worker.runner import Worker
from crawlfleet.worker.settings import WorkerSettings
from tests.certs import Pki, make_pki
from tests.conftest import StartCoordinator
from tests.helpers import error_info, eventually, lease_request, noop

TOKENS = {
    Role.PRODUCER: "producer-secret",
    Role.WORKER: "worker-secret",
    Role.VIEWER: "viewer-secret",
    Role.ADMIN: "admin-secret",
}
DENIED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
CALL_TIMEOUT = 5.0


def with_tokens(**overrides: Any) -> SecuritySettings:
    tokens = tuple(TokenEntry.from_token(role, f"test-{role}", token) for role, token in TOKENS.items())
    return SecuritySettings(tokens=tokens, **overrides)


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


Call = Callable[[grpc.aio.Channel, Any], Awaitable[object]]


def job_queue(name: str, request: object) -> Call:
    return lambda channel, metadata: getattr(pb_grpc.JobQueueStub(channel), name)(
        request, metadata=metadata, timeout=CALL_TIMEOUT
    )


def job_queue_stream(name: str, request: object) -> Call:
    """A server-streaming call: its first message (or its error) is the verdict."""

    async def call(channel: grpc.aio.Channel, metadata: Any) -> object:
        stream = getattr(pb_grpc.JobQueueStub(channel), name)(request, metadata=metadata, timeout=CALL_TIMEOUT)
        try:
            return await stream.read()
        finally:
            stream.cancel()

    return call


def admin(name: str, request: object) -> Call:
    return lambda channel, metadata: getattr(admin_pb2_grpc.AdminStub(channel), name)(
        request, metadata=metadata, timeout=CALL_TIMEOUT
    )


# Method, a call (empty requests are fine: only the auth verdict matters), the roles besides admin allowed.
MATRIX: list[tuple[str, Call, set[Role]]] = [
    ("Enqueue", job_queue("Enqueue", pb.EnqueueRequest(jobs=[noop()])), {Role.PRODUCER}),
    ("Lease", job_queue("Lease", lease_request(wait=0.0)), {Role.WORKER}),
    ("Heartbeat", job_queue("Heartbeat", pb.HeartbeatRequest(worker_id="w1")), {Role.WORKER}),
    ("Complete", job_queue("Complete", pb.CompleteRequest()), {Role.WORKER}),
    ("Fail", job_queue("Fail", pb.FailRequest()), {Role.WORKER}),
    ("ReportRobots", job_queue("ReportRobots", pb.ReportRobotsRequest()), {Role.WORKER}),
    ("GetRobots", job_queue("GetRobots", pb.GetRobotsRequest(host="shop.example")), {Role.WORKER}),
    (
        "WatchJobs",
        job_queue_stream("WatchJobs", pb.WatchJobsRequest(all_unfinished=True)),
        {Role.PRODUCER, Role.VIEWER},
    ),
    ("GetJob", admin("GetJob", admin_pb2.GetJobRequest(job_id=1)), {Role.PRODUCER, Role.VIEWER}),
    ("GetQueueStats", admin("GetQueueStats", admin_pb2.GetQueueStatsRequest()), {Role.VIEWER}),
    ("GetQueueHealth", admin("GetQueueHealth", admin_pb2.GetQueueHealthRequest()), {Role.VIEWER}),
    ("GetQueueActivity", admin("GetQueueActivity", admin_pb2.GetQueueActivityRequest()), {Role.VIEWER}),
    ("ListJobs", admin("ListJobs", admin_pb2.ListJobsRequest()), {Role.VIEWER}),
    ("ListWorkers", admin("ListWorkers", admin_pb2.ListWorkersRequest()), {Role.VIEWER}),
    ("PurgeJobs", admin("PurgeJobs", admin_pb2.PurgeJobsRequest()), set()),
    ("CancelJob", admin("CancelJob", admin_pb2.CancelJobRequest(job_id=1)), set()),
    ("RequeueDeadJobs", admin("RequeueDeadJobs", admin_pb2.RequeueDeadJobsRequest()), set()),
    # Hosts and their policies are the operators' alone (admins change them, viewers read them).
    ("ListHosts", admin("ListHosts", admin_pb2.ListHostsRequest()), {Role.VIEWER}),
    ("GetHost", admin("GetHost", admin_pb2.GetHostRequest(host="a.example")), {Role.VIEWER}),
    ("SetHostPolicy", admin("SetHostPolicy", admin_pb2.SetHostPolicyRequest(pattern="a.example")), set()),
    ("ClearHostPolicy", admin("ClearHostPolicy", admin_pb2.ClearHostPolicyRequest(pattern="a.example")), set()),
    ("ListHostPolicies", admin("ListHostPolicies", admin_pb2.ListHostPoliciesRequest()), {Role.VIEWER}),
    ("PauseHost", admin("PauseHost", admin_pb2.PauseHostRequest(host="a.example")), set()),
    ("ResumeHost", admin("ResumeHost", admin_pb2.ResumeHostRequest(host="a.example")), set()),
]


async def outcome(call: Call, channel: grpc.aio.Channel, metadata: Any) -> tuple[grpc.StatusCode, str]:
    """The status code of the call and the ErrorInfo reason, if it failed with one."""
    try:
        await call(channel, metadata)
    except grpc.aio.AioRpcError as err:
        reason = error_info(err).reason if err.code() in DENIED else ""
        return err.code(), reason
    return grpc.StatusCode.OK, ""


async def test_role_matrix(start_coordinator: StartCoordinator) -> None:
    coord = await start_coordinator(security=with_tokens())
    wrong: list[str] = []
    for method, call, allowed in MATRIX:
        for label, metadata in [
            ("no token", None),
            ("unknown token", bearer("not-a-token")),
            ("no scheme", (("authorization", TOKENS[Role.ADMIN]),)),
            ("basic scheme", (("authorization", f"Basic {TOKENS[Role.ADMIN]}"),)),
            ("empty bearer", (("authorization", "Bearer "),)),
        ]:
            code, reason = await outcome(call, coord.channel, metadata)
            if (code, reason) != (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"):
                wrong.append(f"{method} with {label}: {code.name} {reason}")
        for role, token in TOKENS.items():
            code, reason = await outcome(call, coord.channel, bearer(token))
            if role is Role.ADMIN or role in allowed:
                if code in DENIED:
                    wrong.append(f"{method} as {role}: {code.name}, expected it allowed")
            elif (code, reason) != (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED"):
                wrong.append(f"{method} as {role}: {code.name} {reason}, expected PERMISSION_DENIED")
    assert not wrong, "\n".join(wrong)


async def test_allowed_calls_reach_the_servicer(start_coordinator: StartCoordinator) -> None:
    coord = await start_coordinator(security=with_tokens())
    producer = bearer(TOKENS[Role.PRODUCER])
    (job,) = (await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[noop()]), metadata=producer)).jobs
    got = await coord.admin.GetJob(admin_pb2.GetJobRequest(job_id=job.id), metadata=producer)
    assert got.job.id == job.id
    leased = await coord.queue.Lease(lease_request(wait=0.0), metadata=bearer(TOKENS[Role.WORKER]))
    assert [j.id for j in leased.jobs] == [job.id]


async def test_health_and_reflection_need_no_token(start_coordinator: StartCoordinator) -> None:
    coord = await start_coordinator(security=with_tokens())
    health = health_pb2_grpc.HealthStub(coord.channel)
    answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(coord.channel)
    call = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    services = [service.name async for response in call for service in response.list_services_response.service]
    assert "crawlfleet.v1.JobQueue" in services


async def test_tokens_file_holds_digests(start_coordinator: StartCoordinator, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# role:name:sha256hex\n\nproducer:ingest:{hash_token('from-file')}\n")
    coord = await start_coordinator(security=SecuritySettings(tokens_file=tokens))
    await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[noop()]), metadata=bearer("from-file"))
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await coord.queue.Lease(lease_request(wait=0.0), metadata=bearer("from-file"))
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error_info(denied.value).metadata["role"] == "producer"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@contextlib.asynccontextmanager
async def tls_channel(
    address: str, pki: Pki, *, client_cert: bool = False, token: str | None = None
) -> AsyncIterator[grpc.aio.Channel]:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=pki.client_key.read_bytes() if client_cert else None,
        certificate_chain=pki.client_cert.read_bytes() if client_cert else None,
    )
    if token is not None:
        credentials = grpc.composite_channel_credentials(credentials, grpc.access_token_call_credentials(token))
    async with grpc.aio.secure_channel(address, credentials) as channel:
        yield channel


async def enqueue(channel: grpc.aio.Channel, metadata: Any = None) -> int:
    request = pb.EnqueueRequest(jobs=[noop()])
    answer = await pb_grpc.JobQueueStub(channel).Enqueue(request, metadata=metadata, timeout=CALL_TIMEOUT)
    return answer.jobs[0].id


async def test_server_tls(start_coordinator: StartCoordinator, pki: Pki) -> None:
    coord = await start_coordinator(security=SecuritySettings(tls_cert=pki.server_cert, tls_key=pki.server_key))
    async with tls_channel(coord.address, pki) as channel:
        assert await enqueue(channel) > 0
    with pytest.raises(grpc.aio.AioRpcError) as plain:
        await enqueue(coord.channel)  # the fixture's plaintext channel
    assert plain.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_requires_a_client_certificate(start_coordinator: StartCoordinator, pki: Pki) -> None:
    coord = await start_coordinator(
        security=SecuritySettings(tls_cert=pki.server_cert, tls_key=pki.server_key, tls_client_ca=pki.ca)
    )
    async with tls_channel(coord.address, pki) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await enqueue(channel)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    async with tls_channel(coord.address, pki, client_cert=True) as channel:
        assert await enqueue(channel) > 0


async def test_tls_with_tokens(start_coordinator: StartCoordinator, pki: Pki) -> None:
    coord = await start_coordinator(security=with_tokens(tls_cert=pki.server_cert, tls_key=pki.server_key))
    async with tls_channel(coord.address, pki, token=TOKENS[Role.PRODUCER]) as channel:
        assert await enqueue(channel) > 0
    async with tls_channel(coord.address, pki, token=TOKENS[Role.WORKER]) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await enqueue(channel)
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def run_one_noop_job(address: str, job_id: int, security: ChannelSecurity, db: asyncpg.Pool) -> None:
    """An in-process worker with ``security`` runs the queued job ``job_id`` to success."""
    settings = WorkerSettings(
        coordinator=address, worker_id="secure", slots=1, lease_wait=1.0, shutdown_grace=0.0, security=security
    )
    async with Worker(settings) as worker:
        task = asyncio.create_task(worker.run())

        async def succeeded() -> bool:
            return bool(await db.fetchval("SELECT state::text FROM jobs WHERE id = $1", job_id) == "succeeded")

        try:
            await eventually(succeeded, what="the worker to complete the job")
        finally:
            await worker.shutdown()
            await task


async def test_worker_with_token_and_mutual_tls(
    start_coordinator: StartCoordinator, pki: Pki, db: asyncpg.Pool
) -> None:
    coord = await start_coordinator(
        security=with_tokens(tls_cert=pki.server_cert, tls_key=pki.server_key, tls_client_ca=pki.ca)
    )
    security = ChannelSecurity(
        token=TOKENS[Role.WORKER], tls_ca=pki.ca, tls_cert=pki.client_cert, tls_key=pki.client_key
    )
    async with tls_channel(coord.address, pki, client_cert=True, token=TOKENS[Role.PRODUCER]) as producer:
        job_id = await enqueue(producer)
    await run_one_noop_job(coord.address, job_id, security, db)


async def test_worker_with_token_on_plain_loopback(start_coordinator: StartCoordinator, db: asyncpg.Pool) -> None:
    coord = await start_coordinator(security=with_tokens())
    job_id = await enqueue(coord.channel, bearer(TOKENS[Role.PRODUCER]))
    await run_one_noop_job(coord.address, job_id, ChannelSecurity(token=TOKENS[Role.WORKER]), db)
