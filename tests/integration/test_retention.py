"""Retention on a real database: finished jobs past their limit go in bounded batches with their
attempts, pages and orphan images; live and younger jobs stay; it runs beside claims and
completes and on several coordinators at once; PurgeJobs is the same removal; metrics count it."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib

import asyncpg
import pytest

from crawlfleet.coordinator.metrics import CoordinatorMetrics
from crawlfleet.coordinator.retention import Retention, remove_expired
from crawlfleet.coordinator.storage.admin import AdminQueue
from crawlfleet.coordinator.storage.crawls import CrawlStore
from crawlfleet.v1 import admin_pb2, crawls_pb2, crawls_pb2_grpc, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import assert_counts_exact, eventually, lease_request, noop, noop_result, scrape, seconds
from tests.integration.jobs import enqueue, fail, make_dead, make_succeeded
from tests.integration.test_crawls import page_result

HOUR = 3600.0
THUMB_DATA = b"RIFF\x00\x00\x00\x00WEBPVP8 retention"
IMAGE_SHA = "ef" * 32


def removed(metrics: CoordinatorMetrics, state: str, by: str = "retention") -> float:
    return metrics.registry.get_sample_value("crawlfleet_jobs_removed_total", {"state": state, "by": by}) or 0.0


async def db_now(db: asyncpg.Pool) -> dt.datetime:
    now: dt.datetime = await db.fetchval("SELECT now()")
    return now


async def states_by_id(db: asyncpg.Pool) -> dict[int, str]:
    return {r["id"]: r["state"] for r in await db.fetch("SELECT id, state::text FROM jobs")}


class CountingAdmin(AdminQueue):
    """The real AdminQueue, counting its purge transactions."""

    batches = 0

    async def purge(self, **kwargs: object) -> object:  # type: ignore[override]
        self.batches += 1
        return await super().purge(**kwargs)  # type: ignore[arg-type]


async def complete_with_image(coord: RunningCoordinator, url: str) -> int:
    """A succeeded scrape job whose page has a processed image with a thumbnail."""
    (job_id,) = await enqueue(coord, scrape(url))
    (job,) = (await coord.queue.Lease(lease_request(worker_id="w-img"))).jobs
    thumbnail = jobs_pb2.Thumbnail(
        max_side=64, width=1, height=1, format="WEBP", sha256=hashlib.sha256(THUMB_DATA).hexdigest(), data=THUMB_DATA
    )
    image = jobs_pb2.ImageResult(
        url=url + "i.png",
        sha256=IMAGE_SHA,
        format="PNG",
        width=1,
        height=1,
        byte_size=1,
        perceptual_hash="0" * 16,
        thumbnails=[thumbnail],
    )
    page = jobs_pb2.ScrapeResult(
        final_url=url, status_code=200, rendered_with=jobs_pb2.RENDER_MODE_HTTP, images=[image]
    )
    done = pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=jobs_pb2.JobResult(scrape=page))
    await coord.queue.Complete(pb.CompleteRequest(jobs=[done]))
    return job_id


async def test_retention_removes_exactly_the_expired_finished_jobs_in_batches(
    coord: RunningCoordinator, db: asyncpg.Pool
) -> None:
    succeeded = [await make_succeeded(coord, f"http://a.test/ok{n}") for n in range(5)]
    with_image = await complete_with_image(coord, "http://a.test/img")
    dead = await make_dead(coord, "http://a.test/dead")
    (cancelled,) = await enqueue(coord, noop())
    await coord.admin.CancelJob(admin_pb2.CancelJobRequest(job_id=cancelled))
    finished_at = await db_now(db)
    leased_id, queued_id = await enqueue(coord, scrape("http://b.test/leased"), scrape("http://b.test/queued"))
    (leased,) = (await coord.queue.Lease(lease_request(worker_id="w-live", max_jobs=1))).jobs
    assert leased.id == leased_id
    metrics = CoordinatorMetrics()
    admin = CountingAdmin(db)
    # Finished jobs kept 1 h, dead ones 3 h.
    retention = Retention(finished_seconds=HOUR, dead_seconds=3 * HOUR, batch=2)

    # Nothing has been finished an hour yet.
    assert await remove_expired(admin, retention, metrics, now=finished_at + dt.timedelta(minutes=59)) == {}
    assert len(await states_by_id(db)) == 10

    # 2 h on: the finished jobs go, in batches of 2 (7 jobs: 4 batches), the dead one (3 h) stays.
    admin.batches = 0
    gone = await remove_expired(admin, retention, metrics, now=finished_at + dt.timedelta(hours=2))
    assert gone == {"succeeded": 6, "cancelled": 1}
    assert admin.batches == 4 + 1  # and one (empty) batch of the dead jobs' rule
    assert await states_by_id(db) == {dead: "dead", leased_id: "leased", queued_id: "queued"}
    # Their history and results went with them; the image no page refers to any more too.
    expired = [*succeeded, with_image, cancelled]
    assert await db.fetchval("SELECT count(*) FROM job_attempts WHERE job_id = ANY($1::bigint[])", expired) == 0
    assert await db.fetchval("SELECT count(*) FROM pages") == 0
    assert await db.fetchval("SELECT count(*) FROM images") == 0
    assert await db.fetchval("SELECT count(*) FROM thumbnails") == 0
    assert removed(metrics, "succeeded") == 6 and removed(metrics, "cancelled") == 1
    assert metrics.registry.get_sample_value("crawlfleet_images_removed_total", {"by": "retention"}) == 1

    # 4 h on: the dead job too; live jobs never.
    gone = await remove_expired(admin, retention, metrics, now=finished_at + dt.timedelta(hours=4))
    assert gone == {"dead": 1}
    assert await states_by_id(db) == {leased_id: "leased", queued_id: "queued"}
    await assert_counts_exact(db)
    # A removed job is gone for GetJob.
    with pytest.raises(Exception, match="NOT_FOUND"):
        await coord.admin.GetJob(admin_pb2.GetJobRequest(job_id=dead))


async def test_dead_jobs_stay_when_only_finished_ones_have_a_limit(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    ok = await make_succeeded(coord, "http://a.test/ok")
    dead = await make_dead(coord, "http://a.test/dead")
    later = await db_now(db) + dt.timedelta(days=365)
    retention = Retention(finished_seconds=HOUR, dead_seconds=None)
    assert await remove_expired(AdminQueue(db), retention, CoordinatorMetrics(), now=later) == {"succeeded": 1}
    assert await states_by_id(db) == {dead: "dead"}
    assert ok not in await states_by_id(db)


async def test_retention_skips_its_turn_while_another_coordinator_removes(
    coord: RunningCoordinator, db: asyncpg.Pool, db_dsn: str
) -> None:
    await make_succeeded(coord, "http://a.test/ok")
    later = await db_now(db) + dt.timedelta(days=1)
    other = await asyncpg.connect(db_dsn)
    try:
        async with other.transaction():  # another coordinator in the middle of a batch
            await other.execute("SELECT pg_advisory_xact_lock(hashtext('crawlfleet.job_purge'))")
            retention = Retention(finished_seconds=HOUR)
            assert await remove_expired(AdminQueue(db), retention, CoordinatorMetrics(), now=later) == {}
        assert await remove_expired(AdminQueue(db), retention, CoordinatorMetrics(), now=later) == {"succeeded": 1}
    finally:
        await other.close()


async def test_two_coordinators_remove_history_while_workers_claim_and_complete(
    start_coordinator: StartCoordinator, db: asyncpg.Pool, db_dsn: str
) -> None:
    coord = await start_coordinator()
    old = await enqueue(coord, *[noop() for _ in range(120)])
    while leased := (await coord.queue.Lease(lease_request(worker_id="w-old", max_jobs=50))).jobs:
        done = [pb.CompletedJob(job_id=j.id, lease_token=j.lease_token, result=noop_result()) for j in leased]
        await coord.queue.Complete(pb.CompleteRequest(jobs=done))
    bound = await db_now(db)  # everything finished before this is history; nothing after it is
    fresh = set(await enqueue(coord, *[noop() for _ in range(300)]))
    completed: list[int] = []

    async def worker(worker_id: str) -> None:
        while len(completed) < len(fresh):
            leased = (await coord.queue.Lease(lease_request(worker_id=worker_id, max_jobs=7, wait=0.2))).jobs
            done = [pb.CompletedJob(job_id=j.id, lease_token=j.lease_token, result=noop_result()) for j in leased]
            if done:
                await coord.queue.Complete(pb.CompleteRequest(jobs=done))
                completed.extend(j.id for j in leased)

    # Two coordinators' removals (pools of their own), with small batches so they take turns often.
    pools = [await asyncpg.create_pool(db_dsn, min_size=1, max_size=2) for _ in range(2)]
    retention = Retention(finished_seconds=HOUR, batch=7)
    totals: list[dict[str, int]] = [{}, {}]

    async def removal(n: int) -> None:
        admin = AdminQueue(pools[n])
        while len(completed) < len(fresh):
            for state, count in (
                await remove_expired(admin, retention, CoordinatorMetrics(), now=bound + dt.timedelta(hours=1))
            ).items():
                totals[n][state] = totals[n].get(state, 0) + count
            await asyncio.sleep(0)

    try:
        await asyncio.wait_for(asyncio.gather(worker("w1"), worker("w2"), removal(0), removal(1)), timeout=60)
        for n in range(2):  # what is left after the workers finished
            await removal_pass(pools[n], retention, bound, totals[n])
    finally:
        for pool in pools:
            await pool.close()
    # The history went exactly once; every fresh job completed exactly once and is still there.
    assert sum(t.get("succeeded", 0) for t in totals) == len(old)
    assert sorted(completed) == sorted(fresh)
    rows = await db.fetch("SELECT id, state::text, attempt FROM jobs")
    assert {r["id"] for r in rows} == fresh
    assert {(r["state"], r["attempt"]) for r in rows} == {("succeeded", 1)}
    assert await db.fetchval("SELECT count(*) FROM job_attempts") == len(fresh)
    await assert_counts_exact(db)


async def removal_pass(pool: asyncpg.Pool, retention: Retention, bound: dt.datetime, total: dict[str, int]) -> None:
    gone = await remove_expired(AdminQueue(pool), retention, CoordinatorMetrics(), now=bound + dt.timedelta(hours=1))
    for state, count in gone.items():
        total[state] = total.get(state, 0) + count


async def test_coordinators_run_retention_in_the_background(
    start_coordinator: StartCoordinator, db: asyncpg.Pool
) -> None:
    # A limit of a tenth of a second, so the test need not wait an hour.
    retention = Retention(finished_seconds=0.1, dead_seconds=0.1, interval_seconds=0.1, batch=3)
    coords = [await start_coordinator(retention=retention) for _ in range(2)]
    finished = [await make_succeeded(coords[0], f"http://a.test/{n}") for n in range(7)]
    finished.append(await make_dead(coords[1], "http://a.test/dead"))
    (queued,) = await enqueue(coords[0], scrape("http://b.test/waits"))

    async def history_gone() -> bool:
        return not await db.fetchval("SELECT count(*) FROM jobs WHERE id = ANY($1::bigint[])", finished)

    await eventually(history_gone, what="the background removal")
    assert await states_by_id(db) == {queued: "queued"}
    by_state = {state: sum(removed(c.coordinator.metrics, state) for c in coords) for state in ("succeeded", "dead")}
    assert by_state == {"succeeded": 7, "dead": 1}


async def test_purge_jobs_is_the_same_removal_and_is_counted(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    await make_succeeded(coord, "http://a.test/ok")
    await make_dead(coord, "http://a.test/dead")
    await db.execute(
        "UPDATE jobs SET created_at = created_at - interval '2 days', finished_at = finished_at - interval '2 days'"
    )
    response = await coord.admin.PurgeJobs(admin_pb2.PurgeJobsRequest(finished_before=seconds(86400)))
    assert response.deleted_jobs == 2
    metrics = coord.coordinator.metrics
    assert removed(metrics, "succeeded", "purge") == 1 and removed(metrics, "dead", "purge") == 1
    assert removed(metrics, "succeeded") == 0


async def test_an_ended_crawl_goes_with_its_seen_urls_once_retention_removed_all_its_jobs(
    coord: RunningCoordinator, db: asyncpg.Pool
) -> None:
    start = crawls_pb2_grpc.CrawlsStub(coord.channel).StartCrawl
    emptied = (
        await start(
            crawls_pb2.StartCrawlRequest(spec=crawls_pb2.CrawlSpec(seeds=[f"https://a.example/{n}" for n in range(5)]))
        )
    ).crawl_id
    for job in (await coord.queue.Lease(lease_request(max_jobs=10))).jobs:
        await coord.queue.Complete(pb.CompleteRequest(jobs=[page_result(job, [])]))
    with_dead = (
        await start(crawls_pb2.StartCrawlRequest(spec=crawls_pb2.CrawlSpec(seeds=["https://b.example/"])))
    ).crawl_id
    (job,) = (await coord.queue.Lease(lease_request())).jobs
    await fail(coord, job)
    # The coordinator's own loop may have finished either first: check the state, not who did it.
    await CrawlStore(db).finish_idle()
    ended = await db.fetch("SELECT id FROM crawls WHERE state = 'finished' ORDER BY id")
    assert [row["id"] for row in ended] == [emptied, with_dead]
    running = (
        await start(crawls_pb2.StartCrawlRequest(spec=crawls_pb2.CrawlSpec(seeds=["https://c.example/"])))
    ).crawl_id
    await AdminQueue(db).fold_counts()
    # Dead jobs are kept: the crawl that has one stays, with its seen set; batches of 2 rows.
    retention = Retention(finished_seconds=HOUR, dead_seconds=None, batch=2)
    await remove_expired(AdminQueue(db), retention, CoordinatorMetrics(), now=await db_now(db) + dt.timedelta(hours=2))
    assert sorted(r["id"] for r in await db.fetch("SELECT id FROM crawls")) == [with_dead, running]
    urls = {r["crawl_id"]: r["n"] for r in await db.fetch("SELECT crawl_id, count(*) AS n FROM crawl_urls GROUP BY 1")}
    assert urls == {with_dead: 1, running: 1}
    for table in ("crawl_job_counts", "crawl_job_count_deltas", "crawl_host_counts", "crawl_path_counts"):
        assert await db.fetchval(f"SELECT count(*) FROM {table} WHERE crawl_id = $1", emptied) == 0, table
    # A crawl that ended within the limit stays too, even without jobs.
    await db.execute("DELETE FROM jobs WHERE crawl_id = $1", with_dead)
    await remove_expired(AdminQueue(db), retention, CoordinatorMetrics(), now=await db_now(db))
    assert await db.fetchval("SELECT count(*) FROM crawls WHERE id = $1", with_dead) == 1
