# ruff: noqa: E501 - one case per line reads as a table
"""Bad input through the real RPCs: a clear INVALID_ARGUMENT naming the field, never UNKNOWN,
never the text of a Python exception or of PostgreSQL; and a batch loses only its bad job."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from crawlfleet.v1 import admin_pb2, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.worker.client import CoordinatorClient
from crawlfleet.worker.errors import CoordinatorError
from crawlfleet.worker.reporting import CompleteBatcher, Settled
from tests.conftest import RunningCoordinator
from tests.helpers import error_info, eventually, lease_request, noop, scrape
from tests.integration.jobs import enqueue, get_job

TIMEOUT = 10.0
# Words that say internal details reached the caller.
LEAKS = ("Traceback", "asyncpg", "Failing row", "violates", "Error:", "Exception", "invalid input syntax", "jsonb")
TOKEN = str(uuid.uuid4())
SHA = "ab" * 32

Call = Callable[[RunningCoordinator], Awaitable[object]]


def _duration(seconds: int, nanos: int = 0) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


def _page(**fields: Any) -> jobs_pb2.JobResult:
    base: dict[str, Any] = {
        "final_url": "http://a.test/",
        "status_code": 200,
        "rendered_with": jobs_pb2.RENDER_MODE_HTTP,
    }
    base.update(fields)
    return jobs_pb2.JobResult(scrape=jobs_pb2.ScrapeResult(**base))


def _complete(result: jobs_pb2.JobResult, job_id: int = 1, lease_token: str = TOKEN) -> Call:
    return lambda c: c.queue.Complete(
        pb.CompleteRequest(jobs=[pb.CompletedJob(job_id=job_id, lease_token=lease_token, result=result)]),
        timeout=TIMEOUT,
    )


# A no-op result has nothing to bound: in its Complete only the token can be bad.
NOOP_RESULT = jobs_pb2.JobResult(noop=jobs_pb2.NoopResult())


def _image(**fields: Any) -> jobs_pb2.ImageResult:
    base: dict[str, Any] = {
        "url": "http://a.test/i.png",
        "sha256": SHA,
        "format": "PNG",
        "width": 1,
        "height": 1,
        "byte_size": 1,
        "perceptual_hash": "0" * 16,
    }
    base.update(fields)
    return jobs_pb2.ImageResult(**base)


def _lease(**worker: Any) -> pb.LeaseRequest:
    info = {"worker_id": "w1", **worker}
    return pb.LeaseRequest(worker=pb.WorkerInfo(**info), max_jobs=1)


def _list_jobs(**fields: Any) -> Call:
    return lambda c: c.admin.ListJobs(admin_pb2.ListJobsRequest(**fields), timeout=TIMEOUT)


NUL = "\x00"
CASES: list[tuple[str, Call, str]] = [
    ("enqueue key NUL", lambda c: c.queue.Enqueue(pb.EnqueueRequest(jobs=[noop(idempotency_key=f"k{NUL}")])), "jobs[0].idempotency_key"),
    ("lease worker NUL", lambda c: c.queue.Lease(_lease(worker_id=f"w{NUL}1")), "worker.worker_id"),
    ("lease kind NUL", lambda c: c.queue.Lease(_lease(kinds=[f"no{NUL}op"])), "worker.kinds[0]"),
    ("lease 9 MB kind", lambda c: c.queue.Lease(_lease(kinds=["k" * 9_000_000])), "worker.kinds[0]"),
    ("lease 100k kinds", lambda c: c.queue.Lease(_lease(kinds=[f"k{i}" for i in range(100_000)])), "worker.kinds"),
    ("lease wait nanos", lambda c: c.queue.Lease(pb.LeaseRequest(worker=pb.WorkerInfo(worker_id="w"), max_jobs=1, wait=_duration(0, 10**9))), "wait"),
    ("fail type NUL", lambda c: c.queue.Fail(pb.FailRequest(job_id=1, lease_token=TOKEN, error_type=f"x{NUL}")), "error_type"),
    ("fail message NUL", lambda c: c.queue.Fail(pb.FailRequest(job_id=1, lease_token=TOKEN, error_message=f"m{NUL}")), "error_message"),
    ("heartbeat worker NUL", lambda c: c.queue.Heartbeat(pb.HeartbeatRequest(worker_id=f"w{NUL}")), "worker_id"),
    ("list filter NUL", _list_jobs(filter=admin_pb2.JobFilter(url_prefix=f"http://{NUL}")), "filter.url_prefix"),
    ("list kind NUL", _list_jobs(filter=admin_pb2.JobFilter(kind=f"s{NUL}")), "filter.kind"),
    ("results kind NUL", lambda c: c.admin.ListResults(admin_pb2.ListResultsRequest(kind=f"s{NUL}")), "kind"),
    ("expiring_within 3e6 s", lambda c: c.admin.GetQueueHealth(admin_pb2.GetQueueHealthRequest(expiring_within=_duration(3_000_000))), "expiring_within"),
    ("seen_within 1e12 s", lambda c: c.admin.ListWorkers(admin_pb2.ListWorkersRequest(seen_within=_duration(10**12))), "seen_within"),
    ("seen_within 1e11 s", lambda c: c.admin.ListWorkers(admin_pb2.ListWorkersRequest(seen_within=_duration(10**11))), "seen_within"),
    ("finished_before 2^62 s", lambda c: c.admin.PurgeJobs(admin_pb2.PurgeJobsRequest(finished_before=_duration(2**62))), "finished_before"),
    ("finished_before 1e11 s", lambda c: c.admin.PurgeJobs(admin_pb2.PurgeJobsRequest(finished_before=_duration(10**11))), "finished_before"),
    ("created_after 2^40 s", _list_jobs(filter=admin_pb2.JobFilter(created_after=timestamp_pb2.Timestamp(seconds=2**40))), "filter.created_after"),
    ("created_before nanos", _list_jobs(filter=admin_pb2.JobFilter(created_before=timestamp_pb2.Timestamp(seconds=1, nanos=10**9))), "filter.created_before"),
    ("page token superscript", _list_jobs(page_token="²"), "page_token"),
    ("page token twenty 9s", _list_jobs(page_token="9" * 20), "page_token"),
    ("results token twenty 9s", lambda c: c.admin.ListResults(admin_pb2.ListResultsRequest(page_token="9" * 19)), "page_token"),
    ("thumbnail sha newline", lambda c: c.admin.GetThumbnail(admin_pb2.GetThumbnailRequest(sha256=SHA + "\n")), "sha256"),
    ("json-ld deep", _complete(_page(json_ld=["[" * 100_000 + "]" * 100_000])), "jobs[0].result.scrape.json_ld[0]"),
    ("json-ld NaN", _complete(_page(json_ld=['{"price": NaN}'])), "jobs[0].result.scrape.json_ld[0]"),
    ("json-ld 1e999", _complete(_page(json_ld=['{"price": 1e999}'])), "jobs[0].result.scrape.json_ld[0]"),
    ("json-ld NUL escape", _complete(_page(json_ld=['{"name":"Widget\\u0000Pro"}'])), "jobs[0].result.scrape.json_ld[0]"),
    ("title NUL", _complete(_page(title=f"a{NUL}b")), "jobs[0].result.scrape.title"),
    ("noop token NUL", _complete(NOOP_RESULT, lease_token=TOKEN[:-1] + NUL), "jobs[0].lease_token"),
    ("noop token 9 MB", _complete(NOOP_RESULT, lease_token=TOKEN * 250_000), "jobs[0].lease_token"),
    ("noop token braces", _complete(NOOP_RESULT, lease_token="{" + TOKEN + "}"), "jobs[0].lease_token"),
    ("link text NUL", _complete(_page(links=[jobs_pb2.Link(url="http://a.test/x", text=NUL)])), "jobs[0].result.scrape.links[0].text"),
    ("header NUL", _complete(_page(headers={"server": NUL})), "jobs[0].result.scrape.headers"),
    ("og NUL", _complete(_page(open_graph={"og:title": NUL})), "jobs[0].result.scrape.open_graph"),
    ("negative body_bytes", _complete(_page(body_bytes=-1)), "jobs[0].result.scrape.body_bytes"),
    ("image sha newline", _complete(_page(images=[_image(sha256=SHA + "\n")])), "jobs[0].result.scrape.images[0].sha256"),
    ("image error NUL", _complete(_page(images=[_image(sha256="", error_type="x", error_message=NUL)])), "jobs[0].result.scrape.images[0].error_message"),
]  # fmt: skip


def _assert_clean(error: grpc.aio.AioRpcError) -> None:
    message = error.details() or ""
    for word in LEAKS:
        assert word not in message, f"internal text {word!r} in {message!r}"


@pytest.mark.parametrize(("name", "call", "field"), CASES, ids=[c[0] for c in CASES])
async def test_bad_field_is_named(coord: RunningCoordinator, name: str, call: Call, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(coord)
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, error.code(), error.details())
    assert error_info(error).metadata["field"].startswith(field), error_info(error).metadata
    _assert_clean(error)


async def test_scrape_result_on_a_noop_job_is_refused(coord: RunningCoordinator) -> None:
    (job_id,) = await enqueue(coord, noop())
    (job,) = (await coord.queue.Lease(lease_request(), timeout=TIMEOUT)).jobs
    request = pb.CompleteRequest(jobs=[pb.CompletedJob(job_id=job_id, lease_token=job.lease_token, result=_page())])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coord.queue.Complete(request, timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(caught.value)
    assert info.metadata["field"] == "jobs[0].result" and info.metadata["job_id"] == str(job_id)
    _assert_clean(caught.value)
    assert (await get_job(coord, job_id)).state == jobs_pb2.JOB_STATE_LEASED  # nothing changed


async def test_a_batch_with_one_nul_result_completes_the_others(coord: RunningCoordinator) -> None:
    """A page whose JSON-LD holds a NUL escape is refused alone; the worker's batcher completes the rest."""
    urls = [f"http://site.test/p{i}" for i in range(4)]
    ids = await enqueue(coord, *(scrape(url) for url in urls))
    leased = (await coord.queue.Lease(lease_request(max_jobs=4), timeout=TIMEOUT)).jobs
    assert len(leased) == 4
    bad = leased[2].id
    completed = [
        pb.CompletedJob(
            job_id=job.id,
            lease_token=job.lease_token,
            result=_page(
                final_url=job.spec.scrape.url,
                json_ld=['{"name":"Widget\\u0000Pro"}' if job.id == bad else '{"name":"Widget"}'],
            ),
        )
        for job in leased
    ]
    # The batch as one call: refused, naming the job and the field.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coord.queue.Complete(pb.CompleteRequest(jobs=completed), timeout=TIMEOUT)
    info = error_info(caught.value)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.metadata["job_id"] == str(bad) and info.metadata["field"] == "jobs[2].result.scrape.json_ld[0]"

    # The worker's batcher splits it: the others complete, the bad one is handed back to be failed.
    settled: dict[int, Settled] = {}
    rejected: dict[int, CoordinatorError] = {}
    client = CoordinatorClient(coord.address, pb.WorkerInfo(worker_id="w1"), channel=coord.channel)
    batcher = CompleteBatcher(
        client,
        max_batch=10,
        flush_interval=0.0,
        on_settled=lambda job_id, outcome: settled.__setitem__(job_id, outcome),
        on_rejected=lambda job_id, error: rejected.__setitem__(job_id, error),
    )
    for job in completed:
        batcher.submit(job)
    batcher.close()
    await asyncio.wait_for(batcher.run(), TIMEOUT)
    assert settled == {job_id: "completed" for job_id in ids if job_id != bad}
    assert set(rejected) == {bad}
    for job_id in ids:
        state = (await get_job(coord, job_id)).state
        assert state == (jobs_pb2.JOB_STATE_LEASED if job_id == bad else jobs_pb2.JOB_STATE_SUCCEEDED)


async def test_malformed_bytes_are_invalid_argument_and_counted(coord: RunningCoordinator) -> None:
    method = "/crawlfleet.v1.JobQueue/Enqueue"
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = coord.channel.unary_unary(
        method, request_serializer=None, response_deserializer=None
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(b"\x0a\xff\xff\xff\xff\x0f", timeout=TIMEOUT)  # a length far past the end
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).metadata["field"] == "request"
    _assert_clean(caught.value)
    registry = coord.coordinator.metrics.registry
    labels = {"method": "crawlfleet.v1.JobQueue/Enqueue", "code": "INVALID_ARGUMENT"}

    async def counted_once() -> bool:
        return registry.get_sample_value("crawlfleet_rpc_requests_total", labels) == 1.0

    # The abort sends the status before the server's interceptor has counted the call: the
    # caller can see the error first.
    await eventually(counted_once, what="the refused call to be counted")
