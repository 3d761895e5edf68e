"""Enqueue batches that mix kinds of rows: keyless jobs, duplicates of live jobs and of each other,
new hosts, and a bad entry somewhere in the middle. Each batch is one statement with two inserts
(keyed rows through ON CONFLICT, keyless ones without), so these check that every row comes back
in its place with its own answer, and that the bookkeeping counts what was created."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import grpc
import pytest

from crawlfleet.coordinator.api.validation import validate_enqueue
from crawlfleet.coordinator.settings import CoordinatorSettings
from crawlfleet.coordinator.storage import statements as q
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from tests.conftest import RunningCoordinator
from tests.helpers import error_info, noop, scrape

LIVE_BACKLOG = 2000


async def queued_count(db: asyncpg.Pool) -> int:
    """Queued jobs as the counts bookkeeping has them: folded counts plus the deltas not folded yet."""
    return int(
        await db.fetchval(
            "SELECT (SELECT coalesce(sum(count), 0) FROM job_counts WHERE state = 'queued')"
            " + (SELECT coalesce(sum(delta), 0) FROM job_count_deltas WHERE state = 'queued')"
        )
    )


async def test_a_mixed_batch_answers_each_row_in_its_place(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    (live,) = (await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[scrape("http://a.batch.test/live")]))).jobs
    (keyed,) = (await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[noop(idempotency_key="order-1")]))).jobs
    before = await queued_count(db)
    batch = [
        noop(),  # 0: keyless
        scrape("HTTP://A.batch.test:80/live#x"),  # 1: the live job, spelled otherwise
        scrape("http://b.batch.test:8080/new", priority=5),  # 2: new, on a new host with a port
        noop(idempotency_key="order-1"),  # 3: the live keyed job
        noop(idempotency_key="order-2"),  # 4: new keyed
        scrape("http://b.batch.test:8080/new"),  # 5: row 2 again, in the same batch
        noop(priority=9),  # 6: keyless
        scrape("http://c.batch.test/"),  # 7: new, another new host
    ]
    answers = (await coord.queue.Enqueue(pb.EnqueueRequest(jobs=batch))).jobs
    created = [j.created for j in answers]
    assert created == [True, False, True, False, True, False, True, True]
    assert answers[1].id == live.id and answers[3].id == keyed.id
    assert answers[5].id == answers[2].id  # the batch's own twin: one job, not two
    new_ids = [j.id for j in answers if j.created]
    assert new_ids == sorted(new_ids) and len(set(new_ids)) == 5  # ids follow the batch's order

    rows = {r["id"]: r for r in await db.fetch("SELECT id, kind, priority, host, dedupe_key FROM jobs")}
    assert len(rows) == 2 + 5
    assert [rows[answers[i].id]["priority"] for i in (0, 2, 6)] == [0, 5, 9]
    assert rows[answers[0].id]["dedupe_key"] is None and rows[answers[0].id]["host"] is None
    assert rows[answers[2].id]["host"] == "b.batch.test:8080"
    assert rows[answers[4].id]["dedupe_key"] == "key:order-2"
    # The counts gain what was created, no more; the new hosts are ready for their jobs.
    assert await queued_count(db) == before + 5
    hosts = {r["host"]: r for r in await db.fetch("SELECT host, ready_at, top_priority FROM hosts")}
    assert {"a.batch.test", "b.batch.test:8080", "c.batch.test"} <= hosts.keys()
    assert hosts["b.batch.test:8080"]["ready_at"] is not None and hosts["b.batch.test:8080"]["top_priority"] == 5


async def test_a_batch_of_only_duplicates_creates_nothing(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    first = (await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[scrape("http://d.batch.test/1"), noop()]))).jobs
    before = await queued_count(db)
    again = (await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[scrape("http://d.batch.test/1")] * 3))).jobs
    assert [(j.id, j.created) for j in again] == [(first[0].id, False)] * 3
    assert await queued_count(db) == before
    assert int(await db.fetchval("SELECT count(*) FROM jobs")) == 2


BAD_ENTRIES: list[tuple[str, jobs_pb2.JobSpec, str]] = [
    ("bad url", scrape("mailto:x@batch.test"), "jobs[3].scrape.url"),
    ("nul in a key", noop(idempotency_key="a\u0000b"), "jobs[3].idempotency_key"),
    ("long url", scrape("http://e.batch.test/" + "a" * 9000), "jobs[3].scrape.url"),
    (
        "bad retry",
        noop(retry_policy=jobs_pb2.RetryPolicy(maximum_attempts=5000)),
        "jobs[3].retry_policy.maximum_attempts",
    ),
]


@pytest.mark.parametrize(("case", "bad", "field"), BAD_ENTRIES, ids=[c[0] for c in BAD_ENTRIES])
async def test_a_bad_entry_amid_new_and_duplicate_rows_rejects_the_batch(
    coord: RunningCoordinator, db: asyncpg.Pool, case: str, bad: jobs_pb2.JobSpec, field: str
) -> None:
    await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[scrape("http://e.batch.test/live")]))
    before = await queued_count(db)
    batch = [noop(), scrape("http://e.batch.test/live"), scrape("http://f.batch.test/new"), bad, noop()]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coord.queue.Enqueue(pb.EnqueueRequest(jobs=batch))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).metadata["field"] == field
    assert field in (caught.value.details() or "")
    assert int(await db.fetchval("SELECT count(*) FROM jobs")) == 1
    assert await queued_count(db) == before
    assert not await db.fetchval("SELECT EXISTS (SELECT 1 FROM hosts WHERE host = 'f.batch.test')")


def scans_of_jobs(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The nodes of a plan tree that read the jobs table."""
    found = [plan] if plan.get("Relation Name") == "jobs" and "Scan" in plan["Node Type"] else []
    for child in plan.get("Plans", []):
        found.extend(scans_of_jobs(child))
    return found


async def test_duplicates_are_found_by_index_probes_not_by_reading_the_live_backlog(
    coord: RunningCoordinator, db: asyncpg.Pool
) -> None:
    backlog = [scrape(f"http://g.batch.test/{n}") for n in range(LIVE_BACKLOG)]
    await coord.queue.Enqueue(pb.EnqueueRequest(jobs=backlog))
    await db.execute("ANALYZE jobs")
    batch = [scrape(f"http://h.batch.test/{n}") for n in range(20)] + backlog[:3]
    rows = validate_enqueue(batch, CoordinatorSettings())
    async with db.acquire() as conn:
        # Each in a transaction rolled back: the table keeps only the backlog for the next one.
        tx = conn.transaction()
        await tx.start()
        explained = await conn.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + q.JOB_ENQUEUE_MANY.sql,
            *q.JOB_ENQUEUE_MANY.arguments(rows, {"now": None, "owner": None}),
        )
        await tx.rollback()
        tx = conn.transaction()
        await tx.start()
        outcome = await q.JOB_ENQUEUE_MANY.fetch_one(conn, rows, now=None, owner=None)
        await tx.rollback()
    scans = scans_of_jobs(json.loads(explained)[0]["Plan"])
    assert scans, "the statement looks up live twins in jobs"
    assert all(s["Node Type"] in ("Index Scan", "Index Only Scan") for s in scans), scans
    # One probe per duplicate, each finding its twin: nothing of the rest of the backlog is read.
    assert sum(s["Actual Rows"] * s["Actual Loops"] for s in scans) <= 3
    assert outcome is not None and outcome.created == [True] * 20 + [False] * 3
