"""The steps of completing jobs (queue.Queue.complete): complete all or none, tell replays from
lost leases, and write scrape results in the same transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import asyncpg

from crawlfleet.coordinator.errors import ImageNotStored, LeaseLost, ResultMismatch, WrongResultKind
from crawlfleet.coordinator.storage import statements as q
from crawlfleet.coordinator.storage.result_rows import ImageReference, ResultRows
from crawlfleet.coordinator.storage.rows import CompletedJob, Completion
from crawlfleet.v1 import jobs_pb2

# The SQLSTATE of crawlfleet_lease_not_held_v1 (migration 0013): some lease of a batch is not held.
LEASE_NOT_HELD = "CF001"
# Every noop result encodes to these bytes (NoopResult has no fields): kept once, not encoded per job.
PLAIN_NOOP_RESULT = jobs_pb2.JobResult(noop=jobs_pb2.NoopResult()).SerializeToString(deterministic=True)


def plain_result(result: jobs_pb2.JobResult) -> bytes | None:
    """The bytes to keep of a result that needs no checks, page rows or crawl links (a noop
    result), else None. Such a job's Complete is the completing statement and nothing more."""
    # Its size rules out unknown fields, which would have to be kept.
    if result.ByteSize() == len(PLAIN_NOOP_RESULT) and result.WhichOneof("payload") == "noop":
        return PLAIN_NOOP_RESULT
    return None


class NotAllHeld(Exception):
    """Some lease of a batch is not held: the Complete changed nothing (its transaction, if the
    caller opened one, is aborted)."""


async def complete_all(
    conn: asyncpg.Connection, items: Sequence[Completion], now: dt.datetime | None, principal: str | None
) -> list[CompletedJob]:
    """Complete every item if all are still leased under their tokens (bound to `principal`, when
    given), else none and raise NotAllHeld; the completed jobs."""
    try:
        done = await q.JOB_COMPLETE_IF_LEASED_MANY.fetch(conn, items, now=now, principal=principal)
    except asyncpg.PostgresError as exc:
        if exc.sqlstate == LEASE_NOT_HELD:
            raise NotAllHeld() from None
        raise
    if len(done) != len(items):  # none was held (the statement fails only when some were)
        raise NotAllHeld()
    return done


async def drop_replays(
    conn: asyncpg.Connection, items: Sequence[Completion], principal: str | None
) -> list[Completion]:
    """The items still to complete once replays are set aside; raise if any lease is lost.

    A lease bound to another principal is lost, a replay of its Complete included: another
    principal's call learns nothing about the job."""
    current = {job.id: job for job in await q.JOB_GET_FENCING_MANY.fetch(conn, job_ids=[i.job_id for i in items])}
    lost, mismatched, remaining = [], [], []
    for item in items:
        job = current.get(item.job_id)
        if (
            job is None
            or job.lease_token != item.lease_token
            or job.state not in ("leased", "succeeded")
            or (principal is not None and job.lease_principal != principal)
        ):
            lost.append(item.job_id)
        elif job.state == "leased":
            remaining.append(item)
        elif job.result != item.result:
            mismatched.append(item.job_id)
    if lost:
        raise LeaseLost(lost)
    if mismatched:
        raise ResultMismatch(
            f"job(s) {mismatched} already completed under this lease with a different result",
            metadata={"job_ids": ",".join(map(str, mismatched))},
        )
    return remaining


async def store_results(conn: asyncpg.Connection, rows: ResultRows, now: dt.datetime | None) -> None:
    """Write scrape results; images before the thumbnails and page images that refer to them.

    Every image the results name is locked first (image_lock_stored), so none is removed before
    the transaction ends; images and thumbnails already stored are not written again, and a
    reference to an image or thumbnail that is not stored raises ImageNotStored."""
    hashes = {row.sha256 for row in rows.images} | {ref.image_sha256 for ref in rows.references}
    stored: set[str] = set()
    if hashes:
        stored = {row.sha256 for row in await q.IMAGE_LOCK_STORED.fetch(conn, sha256s=sorted(hashes))}
    # (image, thumbnail) pairs: the same thumbnail bytes may belong to several images.
    found: set[tuple[str, str]] = set()
    if stored and (rows.thumbnails or any(ref.thumbnail_sha256s for ref in rows.references)):
        found = {
            (row.image_sha256, row.sha256)
            for row in await q.THUMBNAIL_FIND_MANY.fetch(conn, image_sha256s=sorted(stored))
        }
    _check_references(rows.references, stored, found)
    # In hash order, as image_lock_stored: two Completes inserting the same new images wait for
    # each other in one order, never in a cycle.
    images = sorted((row for row in rows.images if row.sha256 not in stored), key=lambda row: row.sha256)
    if images:
        await q.IMAGE_INSERT_MANY.execute(conn, images, now=now)
    thumbnails = sorted(
        (row for row in rows.thumbnails if (row.image_sha256, row.sha256) not in found),
        key=lambda row: (row.image_sha256, row.sha256),
    )
    if thumbnails:
        await q.THUMBNAIL_INSERT_MANY.execute(conn, thumbnails)
    if rows.pages:
        written = {page.job_id for page in await q.PAGE_INSERT_MANY.fetch(conn, rows.pages, now=now)}
        for page in rows.pages:
            if page.job_id not in written:
                raise WrongResultKind(page.job_id)  # the caller's transaction rolls the completion back
    if rows.page_images:
        await q.PAGE_IMAGE_INSERT_MANY.execute(conn, rows.page_images)


def _check_references(references: Sequence[ImageReference], stored: set[str], found: set[tuple[str, str]]) -> None:
    """Raise ImageNotStored for the first job whose references are not all stored (the caller's
    transaction rolls its completion back; the worker sends the thumbnails again)."""
    missing: dict[int, list[str]] = {}
    for ref in references:
        if ref.image_sha256 not in stored or any((ref.image_sha256, sha) not in found for sha in ref.thumbnail_sha256s):
            missing.setdefault(ref.job_id, []).append(ref.image_sha256)
    for job_id, sha256s in missing.items():
        raise ImageNotStored(job_id, sha256s)
