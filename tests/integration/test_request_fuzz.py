# ruff: noqa: E501 - one case per line reads as a table
"""A bounded fuzz of every unary method of JobQueue and Admin with raw bytes: random bytes and
mutations of valid requests, under an admin token and a worker token. Whatever arrives, the answer
is a deliberate status (never UNKNOWN) whose message holds no internal text."""

from __future__ import annotations

import asyncio
import random
import re
import uuid

import grpc
from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import Message

from crawlfleet.coordinator.security.auth import Role
from crawlfleet.v1 import admin_pb2, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import StartCoordinator
from tests.helpers import noop, scrape
from tests.integration.test_auth import TOKENS, bearer, with_tokens

SEED = 20240603
CALLS_PER_METHOD_AND_TOKEN = 10  # 22 methods x 2 tokens x 10: 440 calls
CONCURRENCY = 16
CALL_TIMEOUT = 5.0
LEAK = re.compile(r"Traceback|asyncpg|Failing row|violates|[A-Z][A-Za-z]+(Error|Exception)\b|File \"")
TOKEN = str(uuid.uuid4())
PAGE = jobs_pb2.ScrapeResult(
    final_url="http://a.test/",
    status_code=200,
    title="t",
    rendered_with=jobs_pb2.RENDER_MODE_HTTP,
    json_ld=['{"a":[1,{"b":"c"}]}'],
    headers={"server": "x"},
    links=[jobs_pb2.Link(url="http://a.test/b", text="b")],
    images=[jobs_pb2.ImageResult(url="http://a.test/i.png", sha256="ab" * 32, format="PNG", width=1, height=1,
                                 byte_size=1, perceptual_hash="0" * 16)],
)  # fmt: skip
WORKER = pb.WorkerInfo(worker_id="w1", host="h", version="v", kinds=["scrape", "noop"])
SECOND = duration_pb2.Duration(seconds=1)
FILTER = admin_pb2.JobFilter(
    states=[jobs_pb2.JOB_STATE_DEAD],
    kind="scrape",
    url_prefix="http://",
    created_after=timestamp_pb2.Timestamp(seconds=1),
)
# One valid request per method: the seeds of the structure-aware mutations.
VALID: dict[str, Message] = {
    "/crawlfleet.v1.JobQueue/Enqueue": pb.EnqueueRequest(jobs=[scrape("http://a.test/", priority=3), noop(idempotency_key="k")]),
    "/crawlfleet.v1.JobQueue/Lease": pb.LeaseRequest(worker=WORKER, max_jobs=2, wait=duration_pb2.Duration(nanos=1000)),
    "/crawlfleet.v1.JobQueue/Heartbeat": pb.HeartbeatRequest(worker_id="w1", leases=[pb.LeaseRef(job_id=1, lease_token=TOKEN)]),
    "/crawlfleet.v1.JobQueue/Complete": pb.CompleteRequest(
        jobs=[pb.CompletedJob(job_id=1, lease_token=TOKEN, result=jobs_pb2.JobResult(scrape=PAGE))]
    ),
    "/crawlfleet.v1.JobQueue/Fail": pb.FailRequest(job_id=1, lease_token=TOKEN, error_type="x", error_message="m", retry_after=SECOND),
    "/crawlfleet.v1.Admin/GetJob": admin_pb2.GetJobRequest(job_id=1),
    "/crawlfleet.v1.Admin/CancelJob": admin_pb2.CancelJobRequest(job_id=1),
    "/crawlfleet.v1.Admin/RequeueDeadJobs": admin_pb2.RequeueDeadJobsRequest(filter=FILTER, limit=5),
    "/crawlfleet.v1.Admin/GetQueueStats": admin_pb2.GetQueueStatsRequest(),
    "/crawlfleet.v1.Admin/GetQueueHealth": admin_pb2.GetQueueHealthRequest(expiring_within=SECOND, workers_seen_within=SECOND),
    "/crawlfleet.v1.Admin/ListJobs": admin_pb2.ListJobsRequest(filter=FILTER, page_size=5, page_token="12"),
    "/crawlfleet.v1.Admin/ListWorkers": admin_pb2.ListWorkersRequest(seen_within=SECOND),
    "/crawlfleet.v1.Admin/PurgeJobs": admin_pb2.PurgeJobsRequest(finished_before=SECOND, states=[jobs_pb2.JOB_STATE_DEAD], limit=3),
    "/crawlfleet.v1.Admin/GetThumbnail": admin_pb2.GetThumbnailRequest(sha256="ab" * 32),
    "/crawlfleet.v1.Admin/ListResults": admin_pb2.ListResultsRequest(page_size=5, page_token="3", kind="scrape"),
    "/crawlfleet.v1.Admin/ListHosts": admin_pb2.ListHostsRequest(paused_only=True, queued_only=True, host_prefix="a.", page_size=5, page_token="a.test"),
    "/crawlfleet.v1.Admin/GetHost": admin_pb2.GetHostRequest(host="a.test"),
    "/crawlfleet.v1.Admin/SetHostPolicy": admin_pb2.SetHostPolicyRequest(pattern="*.a.test", max_concurrency=3, delay=SECOND, obey_robots=True, note="n"),
    "/crawlfleet.v1.Admin/ClearHostPolicy": admin_pb2.ClearHostPolicyRequest(pattern="*.a.test"),
    "/crawlfleet.v1.Admin/ListHostPolicies": admin_pb2.ListHostPoliciesRequest(page_size=5, page_token="a.test"),
    "/crawlfleet.v1.Admin/PauseHost": admin_pb2.PauseHostRequest(host="a.test", duration=SECOND, reason="r"),
    "/crawlfleet.v1.Admin/ResumeHost": admin_pb2.ResumeHostRequest(host="a.test"),
}  # fmt: skip
# Bytes that tend to matter: varint ends and overlongs, NUL, signs, UTF-8 fragments, huge lengths.
INTERESTING = [b"\x00", b"\xff", b"\x80", b"\x7f", b"\xc0\x80", b"\xff\xff\xff\xff\x0f", b"\x01" * 10, b"\xe2\x82"]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """``data`` changed by a few random edits: flips, inserts, deletions, truncation, splices."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randint(0, len(buf))
        action = rng.randrange(5)
        if action == 0 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif action == 1:
            buf[pos:pos] = rng.choice(INTERESTING)
        elif action == 2:
            del buf[pos : pos + rng.randint(1, 8)]
        elif action == 3:
            del buf[pos:]
        else:
            start = rng.randint(0, len(buf))
            buf[pos:pos] = buf[start : start + rng.randint(1, 32)]
    return bytes(buf)


def payloads(method: str, rng: random.Random, count: int) -> list[bytes]:
    valid = VALID[method].SerializeToString()
    out = [valid, rng.randbytes(rng.randint(0, 64))]
    while len(out) < count:
        out.append(mutate(valid, rng) if rng.random() < 0.8 else rng.randbytes(rng.randint(1, 200)))
    return out


async def test_fuzzed_requests_get_deliberate_answers(start_coordinator: StartCoordinator) -> None:
    coord = await start_coordinator(security=with_tokens(), max_lease_wait_seconds=0.1)
    rng = random.Random(SEED)
    calls = [
        (method, token, data)
        for method in VALID
        for token in (TOKENS[Role.ADMIN], TOKENS[Role.WORKER])
        for data in payloads(method, rng, CALLS_PER_METHOD_AND_TOKEN)
    ]
    gate = asyncio.Semaphore(CONCURRENCY)
    problems: list[str] = []

    async def one(method: str, token: str, data: bytes) -> None:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = coord.channel.unary_unary(
            method, request_serializer=None, response_deserializer=None
        )
        async with gate:
            try:
                await call(data, metadata=bearer(token), timeout=CALL_TIMEOUT)
            except grpc.aio.AioRpcError as error:
                message = error.details() or ""
                # INTERNAL would mean an unexpected exception: an input this edge does not yet check.
                if error.code() in (
                    grpc.StatusCode.UNKNOWN,
                    grpc.StatusCode.INTERNAL,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    problems.append(f"{method} {data!r}: {error.code().name} {message}")
                elif LEAK.search(message):
                    problems.append(f"{method} {data!r}: internal text in {message!r}")

    await asyncio.gather(*(one(*call) for call in calls))
    assert len(calls) == 22 * 2 * CALLS_PER_METHOD_AND_TOKEN
    assert not problems, f"seed {SEED}:\n" + "\n".join(problems[:20])
