"""Job ownership and lease binding through real RPCs with real tokens: a producer reads only the
jobs it enqueued, an admin reads all, and a lease answers only to the principal that took it."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import pytest

from crawlfleet.coordinator.security.auth import Role, TokenEntry
from crawlfleet.coordinator.security.settings import SecuritySettings
from crawlfleet.v1 import admin_pb2, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import error_info, lease_request, noop, noop_result, scrape

TIMEOUT = 10.0
TOKENS = {
    "alice": (Role.PRODUCER, "alice-secret"),
    "bob": (Role.PRODUCER, "bob-secret"),
    "fleet-a": (Role.WORKER, "fleet-a-secret"),
    "fleet-b": (Role.WORKER, "fleet-b-secret"),
    "ops": (Role.ADMIN, "ops-secret"),
}
THUMB_DATA = b"RIFF\x00\x00\x00\x00WEBPVP8 thumbnail"
THUMB_SHA = hashlib.sha256(THUMB_DATA).hexdigest()
IMAGE_SHA = "cd" * 32


def auth(name: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {TOKENS[name][1]}"),)


@pytest.fixture
async def coord(start_coordinator: StartCoordinator) -> RunningCoordinator:
    tokens = tuple(TokenEntry.from_token(role, name, token) for name, (role, token) in TOKENS.items())
    return await start_coordinator(security=SecuritySettings(tokens=tokens))


async def enqueue(coord: RunningCoordinator, who: str, *specs: jobs_pb2.JobSpec) -> list[pb.EnqueuedJob]:
    response = await coord.queue.Enqueue(pb.EnqueueRequest(jobs=list(specs)), metadata=auth(who), timeout=TIMEOUT)
    return list(response.jobs)


async def lease(coord: RunningCoordinator, who: str, worker_id: str = "w1") -> list[pb.LeasedJob]:
    response = await coord.queue.Lease(lease_request(worker_id), metadata=auth(who), timeout=TIMEOUT)
    return list(response.jobs)


async def complete(coord: RunningCoordinator, who: str, job: pb.LeasedJob, result: jobs_pb2.JobResult) -> None:
    request = pb.CompleteRequest(jobs=[pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=result)])
    await coord.queue.Complete(request, metadata=auth(who), timeout=TIMEOUT)


async def code_of(call: Any) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def watch(
    coord: RunningCoordinator, who: str, request: pb.WatchJobsRequest
) -> AsyncIterator[pb.WatchJobsResponse]:
    stream = coord.queue.WatchJobs(request, metadata=auth(who), timeout=TIMEOUT)
    try:
        async for response in stream:
            yield response
    finally:
        stream.cancel()


def page_with_thumbnail() -> jobs_pb2.JobResult:
    thumbnail = jobs_pb2.Thumbnail(max_side=64, width=1, height=1, format="WEBP", sha256=THUMB_SHA, data=THUMB_DATA)
    image = jobs_pb2.ImageResult(
        url="http://a.test/i.png",
        sha256=IMAGE_SHA,
        format="PNG",
        width=1,
        height=1,
        byte_size=1,
        perceptual_hash="0" * 16,
        thumbnails=[thumbnail],
    )
    return jobs_pb2.JobResult(
        scrape=jobs_pb2.ScrapeResult(
            final_url="http://a.test/", status_code=200, rendered_with=jobs_pb2.RENDER_MODE_HTTP, images=[image]
        )
    )


async def test_a_producer_reads_only_its_own_jobs_and_an_admin_reads_all(coord: RunningCoordinator) -> None:
    (alice_job,) = await enqueue(coord, "alice", noop(idempotency_key="alice-key"))
    (bob_job,) = await enqueue(coord, "bob", noop(idempotency_key="bob-key"))
    # GetJob: one's own is there, the other's is not found (as an id that never existed), admins see both.
    own = await coord.admin.GetJob(admin_pb2.GetJobRequest(job_id=alice_job.id), metadata=auth("alice"))
    assert own.job.spec.idempotency_key == "alice-key"
    for job_id in (bob_job.id, 999_999):
        call = coord.admin.GetJob(admin_pb2.GetJobRequest(job_id=job_id), metadata=auth("alice"), timeout=TIMEOUT)
        assert await code_of(call) == grpc.StatusCode.NOT_FOUND
    for job in (alice_job, bob_job):
        got = await coord.admin.GetJob(admin_pb2.GetJobRequest(job_id=job.id), metadata=auth("ops"), timeout=TIMEOUT)
        assert got.job.id == job.id
    # ListResults: each producer pages through its own results only; the admin through all.
    for leased in await lease(coord, "fleet-a"):
        await complete(coord, "fleet-a", leased, noop_result())
    results = {}
    for who in ("alice", "bob", "ops"):
        page = await coord.admin.ListResults(admin_pb2.ListResultsRequest(), metadata=auth(who), timeout=TIMEOUT)
        results[who] = [entry.job_id for entry in page.results]
    assert results == {"alice": [alice_job.id], "bob": [bob_job.id], "ops": [alice_job.id, bob_job.id]}


async def test_changes_are_an_owners_own(coord: RunningCoordinator) -> None:
    """Whether a page changed is decided against its owner's earlier fetches only: what another
    producer fetched shows through no answer."""
    since = jobs_pb2.Job().created_at
    since.GetCurrentTime()
    url = "http://a.test/page"
    page = jobs_pb2.JobResult(
        scrape=jobs_pb2.ScrapeResult(
            final_url=url, status_code=200, rendered_with=jobs_pb2.RENDER_MODE_HTTP, content_sha256="ab" * 32
        )
    )
    owners = ("bob", "alice", "alice")
    ids = []
    for n, who in enumerate(owners):
        (job,) = await enqueue(coord, who, scrape(url, idempotency_key=f"{who}-{n}"))
        (leased,) = await lease(coord, "fleet-a")
        await complete(coord, "fleet-a", leased, page)
        ids.append(job.id)
    changed = {}
    for who in ("alice", "bob", "ops"):
        request = admin_pb2.ListResultsRequest(changed_since=since)
        listed = await coord.admin.ListResults(request, metadata=auth(who), timeout=TIMEOUT)
        changed[who] = [entry.job_id for entry in listed.results]
    # Alice's first fetch is new to her although Bob fetched the same content before; her second is not.
    assert changed == {"alice": [ids[1]], "bob": [ids[0]], "ops": [ids[0], ids[1]]}


async def test_watch_reports_another_producers_jobs_as_not_found(coord: RunningCoordinator) -> None:
    (alice_job,) = await enqueue(coord, "alice", noop())
    (bob_job,) = await enqueue(coord, "bob", noop())
    request = pb.WatchJobsRequest(job_ids=[alice_job.id, bob_job.id])
    first = await anext(watch(coord, "alice", request))
    assert list(first.not_found_job_ids) == [bob_job.id]
    assert first.watched_count == 1
    # all_unfinished means the caller's unfinished jobs; an admin's means everyone's.
    mine = await anext(watch(coord, "alice", pb.WatchJobsRequest(all_unfinished=True)))
    assert (mine.watched_count, mine.remaining_count) == (1, 1)
    every = await anext(watch(coord, "ops", pb.WatchJobsRequest(all_unfinished=True)))
    assert every.watched_count == 2


async def test_a_thumbnail_is_read_by_the_owner_of_a_page_that_shows_it(coord: RunningCoordinator) -> None:
    await enqueue(coord, "alice", scrape("http://a.test/"))
    (job,) = await lease(coord, "fleet-a")
    await complete(coord, "fleet-a", job, page_with_thumbnail())
    request = admin_pb2.GetThumbnailRequest(sha256=THUMB_SHA)
    got = await coord.admin.GetThumbnail(request, metadata=auth("alice"), timeout=TIMEOUT)
    assert got.thumbnail.data == THUMB_DATA
    assert await code_of(coord.admin.GetThumbnail(request, metadata=auth("bob"), timeout=TIMEOUT)) == (
        grpc.StatusCode.NOT_FOUND
    )
    assert (await coord.admin.GetThumbnail(request, metadata=auth("ops"), timeout=TIMEOUT)).thumbnail.data


async def test_two_producers_enqueueing_one_url_get_jobs_of_their_own(coord: RunningCoordinator) -> None:
    (alice_job,) = await enqueue(coord, "alice", scrape("http://a.test/page"))
    (again,) = await enqueue(coord, "alice", scrape("http://a.test/page"))
    (bob_job,) = await enqueue(coord, "bob", scrape("http://a.test/page"))
    (bob_keyed,) = await enqueue(coord, "bob", noop(idempotency_key="shared"))
    (alice_keyed,) = await enqueue(coord, "alice", noop(idempotency_key="shared"))
    assert (again.id, again.created) == (alice_job.id, False)
    assert bob_job.created and bob_job.id != alice_job.id
    assert alice_keyed.created and alice_keyed.id != bob_keyed.id
    # Per-URL exclusivity still holds across owners: the site is not hit twice at once.
    leased = await lease(coord, "fleet-a")
    assert [job.spec.scrape.url for job in leased].count("http://a.test/page") == 1


async def test_jobs_enqueued_without_auth_are_admin_only(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    (job,) = await enqueue(coord, "alice", noop())
    await db.execute("UPDATE jobs SET owner = NULL WHERE id = $1", job.id)  # as before ownership existed
    call = coord.admin.GetJob(admin_pb2.GetJobRequest(job_id=job.id), metadata=auth("alice"), timeout=TIMEOUT)
    assert await code_of(call) == grpc.StatusCode.NOT_FOUND
    assert (await coord.admin.GetJob(admin_pb2.GetJobRequest(job_id=job.id), metadata=auth("ops"))).job.id == job.id


async def test_with_auth_off_every_job_is_visible_and_leases_are_unbound(
    start_coordinator: StartCoordinator,
) -> None:
    coord = await start_coordinator()
    (job,) = (await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[noop()]), timeout=TIMEOUT)).jobs
    assert (await coord.admin.GetJob(admin_pb2.GetJobRequest(job_id=job.id), timeout=TIMEOUT)).job.id == job.id
    (leased,) = (await coord.queue.Lease(lease_request(), timeout=TIMEOUT)).jobs
    request = pb.CompleteRequest(
        jobs=[pb.CompletedJob(job_id=leased.id, lease_token=leased.lease_token, result=noop_result())]
    )
    await coord.queue.Complete(request, timeout=TIMEOUT)
    page = await coord.admin.ListResults(admin_pb2.ListResultsRequest(), timeout=TIMEOUT)
    assert [entry.job_id for entry in page.results] == [job.id]


async def test_another_workers_principal_cannot_touch_a_lease(coord: RunningCoordinator) -> None:
    await enqueue(coord, "alice", noop(), noop())
    first, second = await lease(coord, "fleet-a")
    # Heartbeat: lost for the other principal, and the lease is not extended by it.
    heartbeat = pb.HeartbeatRequest(
        worker_id="w2", leases=[pb.LeaseRef(job_id=first.id, lease_token=first.lease_token)]
    )
    foreign = await coord.queue.Heartbeat(heartbeat, metadata=auth("fleet-b"), timeout=TIMEOUT)
    assert [lease.status for lease in foreign.leases] == [pb.LEASE_STATUS_LOST]
    # Complete and Fail: LEASE_LOST, nothing changed.
    for call in (
        coord.queue.Complete(
            pb.CompleteRequest(
                jobs=[pb.CompletedJob(job_id=first.id, lease_token=first.lease_token, result=noop_result())]
            ),
            metadata=auth("fleet-b"),
            timeout=TIMEOUT,
        ),
        coord.queue.Fail(
            pb.FailRequest(job_id=first.id, lease_token=first.lease_token, error_type="x", retryable=False),
            metadata=auth("fleet-b"),
            timeout=TIMEOUT,
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == grpc.StatusCode.ABORTED
        assert error_info(raised.value).reason == "LEASE_LOST"
    job = await coord.admin.GetJob(admin_pb2.GetJobRequest(job_id=first.id), metadata=auth("ops"), timeout=TIMEOUT)
    assert job.job.state == jobs_pb2.JOB_STATE_LEASED
    # The principal that leased it still holds it: extends, completes, and fails.
    own = await coord.queue.Heartbeat(heartbeat, metadata=auth("fleet-a"), timeout=TIMEOUT)
    assert [lease.status for lease in own.leases] == [pb.LEASE_STATUS_EXTENDED]
    await complete(coord, "fleet-a", first, noop_result())
    # A replay of a completed lease by another principal is no replay: lost, it learns nothing.
    replay = coord.queue.Complete(
        pb.CompleteRequest(
            jobs=[pb.CompletedJob(job_id=first.id, lease_token=first.lease_token, result=noop_result())]
        ),
        metadata=auth("fleet-b"),
        timeout=TIMEOUT,
    )
    assert await code_of(replay) == grpc.StatusCode.ABORTED
    await complete(coord, "fleet-a", first, noop_result())  # the owner's replay stays idempotent
    failed = await coord.queue.Fail(
        pb.FailRequest(job_id=second.id, lease_token=second.lease_token, error_type="x", retryable=False),
        metadata=auth("fleet-a"),
        timeout=TIMEOUT,
    )
    assert failed.state == jobs_pb2.JOB_STATE_DEAD
