"""CancelCrawl against concurrent Completes of the crawl's jobs: the two take the crawl's row lock
and job row locks; they must never wait on each other in a cycle (a deadlock aborts one)."""

from __future__ import annotations

import asyncio

import asyncpg

from crawlfleet.v1 import crawls_pb2 as cpb
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator
from tests.helpers import eventually, lease_request
from tests.integration.test_crawls import crawls, page_result


async def lock_waiters(db: asyncpg.Pool) -> int:
    """Sessions of this database waiting on a lock."""
    return int(
        await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    )


async def test_cancel_and_completes_of_the_crawls_jobs_do_not_deadlock(
    coord: RunningCoordinator, db: asyncpg.Pool
) -> None:
    seeds = [f"https://shop.example/{n}" for n in range(4)]
    crawl_id = (await crawls(coord).StartCrawl(cpb.StartCrawlRequest(spec=cpb.CrawlSpec(seeds=seeds)))).crawl_id
    first, second = (await coord.queue.Lease(lease_request(max_jobs=2))).jobs
    # Discovery of another page holds the crawl's row lock: the cancel queues for it first, then a
    # Complete (its job's row locked) queues behind the cancel. When the lock is let go, the
    # cancel must not wait for the completing job's row while that Complete waits for the crawl.
    holder = await db.acquire()
    try:
        blocking = holder.transaction()
        await blocking.start()
        await holder.execute("SELECT 1 FROM crawls WHERE id = $1 FOR UPDATE", crawl_id)
        cancel = asyncio.ensure_future(crawls(coord).CancelCrawl(cpb.CancelCrawlRequest(crawl_id=crawl_id)))
        await eventually(lambda: _waiting(db, 1), what="the cancel to wait for the crawl's lock")
        complete = asyncio.ensure_future(
            coord.queue.Complete(pb.CompleteRequest(jobs=[page_result(first, ["https://shop.example/new"])]))
        )
        await eventually(lambda: _waiting(db, 2), what="the Complete to wait behind it")
        await blocking.rollback()
    finally:
        await db.release(holder)
    cancelled, _ = await asyncio.wait_for(asyncio.gather(cancel, complete), timeout=30)
    assert (cancelled.state, cancelled.cancelled_jobs, cancelled.stopping_jobs) == (cpb.CRAWL_STATE_CANCELLED, 2, 1)
    states = dict(await db.fetch("SELECT id, state::text FROM jobs WHERE crawl_id = $1", crawl_id))
    assert states[first.id] == "succeeded"
    assert states[second.id] == "leased"  # asked to stop at its next heartbeat
    assert await db.fetchval("SELECT cancel_requested FROM jobs WHERE id = $1", second.id)
    assert sorted(s for job_id, s in states.items() if job_id not in (first.id, second.id)) == ["cancelled"] * 2
    # The cancelled crawl took no page from the completed one.
    assert await db.fetchval("SELECT count(*) FROM crawl_urls WHERE crawl_id = $1", crawl_id) == 4


async def _waiting(db: asyncpg.Pool, n: int) -> bool:
    return await lock_waiters(db) >= n
