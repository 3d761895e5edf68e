"""The fleet's image index on a real coordinator and database: FindStoredImages answers what is
stored, a Complete may refer to stored images instead of carrying their thumbnails, a reference to
an image that is not stored is refused without changing anything, results read back the same
either way, and a purge racing a Complete that refers to an image neither fails nor loses a page."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib

import asyncpg
import grpc
import pytest

from crawlfleet.common.rpc_errors import error_details
from crawlfleet.coordinator.storage.admin import AdminQueue
from crawlfleet.v1 import admin_pb2, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator
from tests.helpers import eventually, lease_request, scrape
from tests.integration.jobs import enqueue

THUMB_DATA = b"RIFF\x00\x00\x00\x00WEBPVP8 index"
THUMB_SHA = hashlib.sha256(THUMB_DATA).hexdigest()
IMAGE_SHA = "ab" * 32


def image(*, stored: bool, sha256: str = IMAGE_SHA, thumb_sha: str = THUMB_SHA) -> jobs_pb2.ImageResult:
    """The test image: with its thumbnail's bytes, or as a reference to the stored one."""
    thumbnail = jobs_pb2.Thumbnail(
        max_side=64, width=2, height=1, format="WEBP", sha256=thumb_sha, data=b"" if stored else THUMB_DATA
    )
    return jobs_pb2.ImageResult(
        url="http://img.test/a.png",
        sha256=sha256,
        format="PNG",
        width=4,
        height=2,
        byte_size=10,
        perceptual_hash="0f" * 8,
        thumbnails=[thumbnail],
        stored=stored,
    )


async def leased_scrape(coord: RunningCoordinator, url: str) -> pb.LeasedJob:
    await enqueue(coord, scrape(url))
    (job,) = (await coord.queue.Lease(lease_request(worker_id="w-index", max_jobs=1))).jobs
    return job


def completed(job: pb.LeasedJob, *images: jobs_pb2.ImageResult) -> pb.CompleteRequest:
    page = jobs_pb2.ScrapeResult(
        final_url=job.spec.scrape.url, status_code=200, rendered_with=jobs_pb2.RENDER_MODE_HTTP, images=images
    )
    return pb.CompleteRequest(
        jobs=[pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=jobs_pb2.JobResult(scrape=page))]
    )


async def job_images(coord: RunningCoordinator, job_id: int) -> list[jobs_pb2.ImageResult]:
    response = await coord.admin.GetJob(admin_pb2.GetJobRequest(job_id=job_id))
    return list(response.job.result.scrape.images)


async def state_of(db: asyncpg.Pool, job_id: int) -> str:
    state: str = await db.fetchval("SELECT state::text FROM jobs WHERE id = $1", job_id)
    return state


async def test_a_stored_image_is_found_then_referenced_and_reads_back_as_if_carried(
    coord: RunningCoordinator, db: asyncpg.Pool
) -> None:
    unknown = "cd" * 32
    assert not (await coord.queue.FindStoredImages(pb.FindStoredImagesRequest(sha256s=[IMAGE_SHA]))).images

    first = await leased_scrape(coord, "http://a.test/1")
    await coord.queue.Complete(completed(first, image(stored=False)))
    found = await coord.queue.FindStoredImages(pb.FindStoredImagesRequest(sha256s=[IMAGE_SHA, unknown, IMAGE_SHA]))
    expected = image(stored=True)
    expected.ClearField("url")
    assert list(found.images) == [expected]  # metadata and thumbnails, no bytes

    second = await leased_scrape(coord, "http://a.test/2")
    await coord.queue.Complete(completed(second, image(stored=True)))
    assert await state_of(db, second.id) == "succeeded"
    # Read back, the two pages show the same image, hashes and thumbnails: the reference is not visible.
    assert await job_images(coord, second.id) == await job_images(coord, first.id)
    carried = image(stored=False)
    carried.thumbnails[0].ClearField("data")
    assert await job_images(coord, second.id) == [carried]
    assert await db.fetchval("SELECT count(*) FROM thumbnails") == 1
    rows = await db.fetch("SELECT job_id, image_sha256 FROM page_images ORDER BY job_id")
    assert [(r["job_id"], r["image_sha256"]) for r in rows] == [(first.id, IMAGE_SHA), (second.id, IMAGE_SHA)]
    thumb = await coord.admin.GetThumbnail(admin_pb2.GetThumbnailRequest(sha256=THUMB_SHA))
    assert thumb.thumbnail.data == THUMB_DATA
    # A replay of the Complete that referred to the image is a replay (same stored result).
    await coord.queue.Complete(completed(second, image(stored=True)))


async def test_two_images_with_byte_identical_thumbnails_each_keep_theirs(
    coord: RunningCoordinator, db: asyncpg.Pool
) -> None:
    other = "ef" * 32  # another image (the same picture as WebP, say) whose thumbnail is the same bytes
    first = await leased_scrape(coord, "http://a.test/png")
    await coord.queue.Complete(completed(first, image(stored=False)))
    second = await leased_scrape(coord, "http://a.test/webp")
    await coord.queue.Complete(completed(second, image(stored=False, sha256=other)))
    found = await coord.queue.FindStoredImages(pb.FindStoredImagesRequest(sha256s=[other]))
    assert [[t.sha256 for t in found.images[0].thumbnails]] == [[THUMB_SHA]]
    # A worker that remembers the second image refers to it, thumbnail and all: not refused.
    third = await leased_scrape(coord, "http://a.test/webp-again")
    await coord.queue.Complete(completed(third, image(stored=True, sha256=other)))
    assert await state_of(db, third.id) == "succeeded"
    assert [t.sha256 for t in (await job_images(coord, third.id))[0].thumbnails] == [THUMB_SHA]
    # Removing the first image's pages leaves the second image's thumbnail.
    await db.execute("DELETE FROM page_images WHERE job_id = $1", first.id)
    await db.execute("DELETE FROM thumbnails WHERE image_sha256 = $1", IMAGE_SHA)
    thumb = await coord.admin.GetThumbnail(admin_pb2.GetThumbnailRequest(sha256=THUMB_SHA))
    assert thumb.thumbnail.data == THUMB_DATA


@pytest.mark.parametrize(
    "reference",
    [image(stored=True), image(stored=True, thumb_sha="ee" * 32)],
    ids=["image not stored", "thumbnail not stored"],
)
async def test_a_reference_to_what_is_not_stored_is_refused_and_changes_nothing(
    coord: RunningCoordinator, db: asyncpg.Pool, reference: jobs_pb2.ImageResult
) -> None:
    if reference.thumbnails[0].sha256 != THUMB_SHA:  # the image is stored, that thumbnail is not
        earlier = await leased_scrape(coord, "http://a.test/earlier")
        await coord.queue.Complete(completed(earlier, image(stored=False)))
    job = await leased_scrape(coord, "http://a.test/ref")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coord.queue.Complete(completed(job, reference))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = error_details(caught.value)
    assert details.reason == "IMAGE_NOT_STORED"
    assert details.metadata["sha256s"] == IMAGE_SHA and details.metadata["job_id"] == str(job.id)
    assert await state_of(db, job.id) == "leased"
    assert await db.fetchval("SELECT count(*) FROM pages WHERE job_id = $1", job.id) == 0
    # Sent again with the thumbnail's bytes, the same result completes the job.
    await coord.queue.Complete(completed(job, image(stored=False)))
    assert await state_of(db, job.id) == "succeeded"


async def test_bad_references_and_lookups_are_invalid_arguments_naming_the_field(coord: RunningCoordinator) -> None:
    job = await leased_scrape(coord, "http://a.test/bad")
    with_data = image(stored=True)
    with_data.thumbnails[0].data = THUMB_DATA
    failed = jobs_pb2.ImageResult(url="http://img.test/x.png", error_type="http_404", stored=True)
    cases = {
        "jobs[0].result.scrape.images[0].thumbnails[0].data": completed(job, with_data),
        "jobs[0].result.scrape.images[0].stored": completed(job, failed),
    }
    for field, request in cases.items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await coord.queue.Complete(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_details(caught.value).field == field
    for field, hashes in {"sha256s[1]": [IMAGE_SHA, "AB" * 32], "sha256s": [IMAGE_SHA] * 1001}.items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await coord.queue.FindStoredImages(pb.FindStoredImagesRequest(sha256s=hashes))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_details(caught.value).field == field


async def waiting_for_locks(db: asyncpg.Pool, count: int) -> None:
    """Until `count` backends of this database wait for a lock."""
    query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"

    async def enough() -> bool:
        return bool(await db.fetchval(query) >= count)

    await eventually(enough, what=f"{count} backends waiting for a lock")


@pytest.mark.parametrize("first", ["purge", "complete"])
@pytest.mark.parametrize("stored", [False, True], ids=["carried", "referenced"])
async def test_a_purge_racing_a_complete_on_the_same_image_loses_no_page(
    coord: RunningCoordinator, db: asyncpg.Pool, first: str, stored: bool
) -> None:
    """The image's only page is purged while another Complete refers to it. An open transaction
    holds the image row so that the two queue behind it in a chosen order, then lets them go.
    Whichever goes first, neither fails on the foreign key: the image stays when the Complete went
    first; when the purge went first, a Complete carrying the image stores it again and one
    referring to it is refused as IMAGE_NOT_STORED (nothing changed) and succeeds when resent."""
    old = await leased_scrape(coord, "http://a.test/old")
    await coord.queue.Complete(completed(old, image(stored=False)))
    job = await leased_scrape(coord, "http://a.test/new")
    admin = AdminQueue(db)
    bound = await db.fetchval("SELECT now() + interval '1 minute'")  # the old page only: the new one is leased
    assert isinstance(bound, dt.datetime)

    async with db.acquire() as holder:
        hold = holder.transaction()
        await hold.start()
        await holder.execute("SELECT 1 FROM images WHERE sha256 = $1 FOR UPDATE", IMAGE_SHA)
        try:
            if first == "purge":
                purge = asyncio.ensure_future(admin.purge(states=["succeeded"], finished_before=bound, limit=10))
                await waiting_for_locks(db, 1)
                complete = asyncio.ensure_future(coord.queue.Complete(completed(job, image(stored=stored))))
            else:
                complete = asyncio.ensure_future(coord.queue.Complete(completed(job, image(stored=stored))))
                await waiting_for_locks(db, 1)
                purge = asyncio.ensure_future(admin.purge(states=["succeeded"], finished_before=bound, limit=10))
            await waiting_for_locks(db, 2)
        finally:
            await hold.rollback()
        counts, answer = await asyncio.gather(purge, complete, return_exceptions=True)

    assert not isinstance(counts, BaseException), counts
    assert counts is not None and counts.deleted_jobs == 1
    if first == "purge" and stored:
        assert isinstance(answer, grpc.aio.AioRpcError), answer
        assert error_details(answer).reason == "IMAGE_NOT_STORED"
        assert await state_of(db, job.id) == "leased"
        await coord.queue.Complete(completed(job, image(stored=False)))  # the worker's resend
    else:
        assert not isinstance(answer, BaseException), answer
    assert await state_of(db, job.id) == "succeeded"
    assert await db.fetchval("SELECT image_sha256 FROM page_images WHERE job_id = $1", job.id) == IMAGE_SHA
    assert await db.fetchval("SELECT count(*) FROM images") == 1
    thumb = await coord.admin.GetThumbnail(admin_pb2.GetThumbnailRequest(sha256=THUMB_SHA))
    assert thumb.thumbnail.data == THUMB_DATA
