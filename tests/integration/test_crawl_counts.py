"""Kept per-crawl job counts (migration 0018): exact through every way a crawl's jobs move, folded
or not, and served by GetCrawl and ListCrawls alike."""

from __future__ import annotations

import asyncpg

from crawlfleet.coordinator.storage import sql
from crawlfleet.coordinator.storage.admin import AdminQueue
from crawlfleet.coordinator.storage.queue import Queue
from crawlfleet.v1 import crawls_pb2 as cpb
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator
from tests.helpers import lease_request
from tests.integration.jobs import fail
from tests.integration.test_crawls import crawls, lease_all, page_result

Counts = dict[tuple[int, int, str], int]


async def kept(db: asyncpg.Pool, crawl_ids: list[int]) -> Counts:
    rows = await db.fetch(sql.query("crawl_job_counts"), crawl_ids)
    return {(r["crawl_id"], r["depth"], r["state"]): r["jobs"] for r in rows}


async def recounted(db: asyncpg.Pool, crawl_ids: list[int]) -> Counts:
    rows = await db.fetch(
        "SELECT crawl_id, coalesce(depth, 0) AS depth, state::text AS state, count(*) AS jobs FROM jobs"
        " WHERE crawl_id = ANY($1::bigint[]) GROUP BY 1, 2, 3",
        crawl_ids,
    )
    return {(r["crawl_id"], r["depth"], r["state"]): r["jobs"] for r in rows}


async def errors_kept(db: asyncpg.Pool, crawl_ids: list[int]) -> dict[int, list[tuple[str, int]]]:
    return {
        c: [(r["error_type"], r["jobs"]) for r in await db.fetch(sql.query("crawl_error_counts"), c)] for c in crawl_ids
    }


async def errors_recounted(db: asyncpg.Pool, crawl_ids: list[int]) -> dict[int, list[tuple[str, int]]]:
    query = (
        "SELECT split_part(coalesce(last_error, state::text), ':', 1) AS error_type, count(*) AS jobs FROM jobs"
        " WHERE crawl_id = $1 AND state IN ('dead', 'cancelled', 'skipped') GROUP BY 1 ORDER BY 2 DESC, 1"
    )
    return {c: [(r["error_type"], r["jobs"]) for r in await db.fetch(query, c)] for c in crawl_ids}


async def assert_exact(db: asyncpg.Pool, crawl_ids: list[int]) -> None:
    """Kept counts (by depth and state, and by error type) equal a recount, with the deltas pending
    and again once folded."""
    actual, errors = await recounted(db, crawl_ids), await errors_recounted(db, crawl_ids)
    assert (await kept(db, crawl_ids), await errors_kept(db, crawl_ids)) == (actual, errors)
    await AdminQueue(db).fold_counts()
    assert await db.fetchval("SELECT count(*) FROM crawl_job_count_deltas") == 0
    assert (await kept(db, crawl_ids), await errors_kept(db, crawl_ids)) == (actual, errors)


async def test_kept_counts_follow_every_move_of_a_crawls_jobs(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    spec = cpb.CrawlSpec(seeds=["https://shop.example/", "https://shop.example/2"], max_depth=3)
    crawl_id = (await crawls(coord).StartCrawl(cpb.StartCrawlRequest(spec=spec))).crawl_id
    other = (
        await crawls(coord).StartCrawl(cpb.StartCrawlRequest(spec=cpb.CrawlSpec(seeds=["https://o.example/"])))
    ).crawl_id
    ids = [crawl_id, other]
    assert await kept(db, ids) == {(crawl_id, 0, "queued"): 2, (other, 0, "queued"): 1}
    home, second, third = sorted(await lease_all(coord), key=lambda j: j.spec.scrape.url)
    await assert_exact(db, ids)
    links = [f"https://shop.example/p{n}" for n in range(4)]
    await coord.queue.Complete(pb.CompleteRequest(jobs=[page_result(second, links)]))  # depth 1 pages queued
    await fail(coord, third)  # dead
    await assert_exact(db, ids)
    # A depth-1 page links to the others: known, so nothing is enqueued twice; then one more level.
    level1 = await lease_all(coord)
    await coord.queue.Complete(pb.CompleteRequest(jobs=[page_result(level1[0], [*links, "https://shop.example/d2"])]))
    await assert_exact(db, ids)
    # The home page links to /d2 again, closer to the seed: its queued job's depth is lowered.
    await coord.queue.Complete(pb.CompleteRequest(jobs=[page_result(home, ["https://shop.example/d2"])]))
    await assert_exact(db, ids)
    await crawls(coord).CancelCrawl(cpb.CancelCrawlRequest(crawl_id=crawl_id))  # queued: cancelled
    await assert_exact(db, ids)
    # The reaper returns the expired leases (the cancelled crawl's end, the other's is queued again).
    await db.execute("UPDATE jobs SET lease_expires_at = now() - interval '1 hour' WHERE state = 'leased'")
    assert await Queue(db).reap_expired(batch=100)
    await assert_exact(db, ids)
    counts = await kept(db, ids)
    assert sum(n for (c, _, state), n in counts.items() if c == crawl_id and state == "cancelled") >= 1
    assert {"cancelled", "http_4xx"} <= {error for error, _ in (await errors_kept(db, [crawl_id]))[crawl_id]}
    # Removed jobs leave the counts (retention deletes rows).
    await db.execute("DELETE FROM jobs WHERE crawl_id = $1 AND state = 'cancelled'", crawl_id)
    await assert_exact(db, ids)


async def test_list_crawls_gives_the_counts_get_crawl_gives(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    started = [
        (await crawls(coord).StartCrawl(cpb.StartCrawlRequest(spec=cpb.CrawlSpec(seeds=seeds)))).crawl_id
        for seeds in (["https://a.example/"], ["https://b.example/", "https://b.example/2", "https://b.example/3"])
    ]
    (job,) = (await coord.queue.Lease(lease_request(max_jobs=1))).jobs
    await coord.queue.Complete(pb.CompleteRequest(jobs=[page_result(job, [])]))
    await coord.queue.Lease(lease_request(max_jobs=1))
    listed = {c.id: c for c in (await crawls(coord).ListCrawls(cpb.ListCrawlsRequest())).crawls}
    assert set(listed) == set(started)
    for crawl_id in started:
        got = (await crawls(coord).GetCrawl(cpb.GetCrawlRequest(crawl_id=crawl_id))).crawl
        row = listed[crawl_id]
        assert (row.queued, row.leased, row.succeeded, row.failed) == (
            got.queued,
            got.leased,
            got.succeeded,
            got.failed,
        )
    assert sum(c.queued + c.leased + c.succeeded for c in listed.values()) == 4
    assert sum(c.succeeded for c in listed.values()) == 1 and sum(c.leased for c in listed.values()) == 1
    assert not any(c.depths or c.errors for c in listed.values())  # GetCrawl's alone
