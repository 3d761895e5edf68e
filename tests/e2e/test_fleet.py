"""End to end: coordinator and worker processes, crashes, signals and restarts."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator

import asyncpg
import grpc
import pytest

from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import job_queue_pb2_grpc, jobs_pb2
from tests.e2e.processes import Fleet, free_port
from tests.helpers import OVERLAPPING_LEASES, QuietHandler, eventually, noop, scrape, serving

pytestmark = pytest.mark.e2e


async def enqueue(port: int, specs: list[jobs_pb2.JobSpec]) -> list[int]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = await job_queue_pb2_grpc.JobQueueStub(channel).Enqueue(pb.EnqueueRequest(jobs=specs))
    return [j.id for j in response.jobs]


async def count(db: asyncpg.Pool, where: str, *args: object) -> int:
    return int(await db.fetchval(f"SELECT count(*) FROM jobs WHERE {where}", *args))


async def all_succeeded(db: asyncpg.Pool, total: int) -> bool:
    return await count(db, "state = 'succeeded'") == total


class Page(QuietHandler):
    def do_GET(self) -> None:
        self.answer(f"<html><head><title>page {self.path}</title></head><body>hi</body></html>".encode(), "text/html")


@pytest.fixture
def site() -> Iterator[str]:
    with serving(Page) as base:
        yield base


async def test_worker_fleet_scrapes_every_job_once_without_overlapping_leases(
    fleet: Fleet, db_dsn: str, db: asyncpg.Pool, site: str
) -> None:
    coordinator = await fleet.coordinator("coordinator", db_dsn)
    assert coordinator.port
    urls, per_url = 8, 4
    specs = [scrape(f"{site}/p{u}", idempotency_key=f"{u}/{n}") for u in range(urls) for n in range(per_url)]
    ids = await enqueue(coordinator.port, specs)
    workers = [fleet.worker(f"worker-{i}", coordinator.port, "--slots", "4") for i in range(3)]
    await eventually(lambda: all_succeeded(db, len(ids)), timeout=60, what="every scrape job to succeed")

    rows = await db.fetch("SELECT job_id, outcome FROM job_attempts")
    assert sorted(r["job_id"] for r in rows if r["outcome"] == "succeeded") == sorted(ids)
    assert [dict(r) for r in await db.fetch(OVERLAPPING_LEASES)] == []
    results = await db.fetch("SELECT target_url, result FROM jobs")
    for row in results:
        page = jobs_pb2.JobResult.FromString(row["result"]).scrape
        assert page.status_code == 200 and page.title == f"page {row['target_url'].removeprefix(site)}"
    for worker in workers:
        worker.signal(signal.SIGTERM)
    assert [await w.wait_exit(30) for w in workers] == [0, 0, 0]


async def test_killed_worker_jobs_are_leased_again_after_expiry(fleet: Fleet, db_dsn: str, db: asyncpg.Pool) -> None:
    coordinator = await fleet.coordinator("coordinator", db_dsn, "--lease-seconds", "1.5")
    assert coordinator.port
    ids = await enqueue(coordinator.port, [noop(duration=1) for _ in range(4)])
    doomed = fleet.worker("doomed", coordinator.port, "--slots", "4")

    async def all_leased_by_doomed() -> bool:
        return await count(db, "state = 'leased' AND leased_by = 'doomed'") == len(ids)

    await eventually(all_leased_by_doomed, what="the doomed worker to lease every job")
    doomed.signal(signal.SIGKILL)
    assert await doomed.wait_exit(10) == -signal.SIGKILL
    fleet.worker("rescuer", coordinator.port, "--slots", "4")
    await eventually(lambda: all_succeeded(db, len(ids)), timeout=60, what="the rescuer to finish every job")
    attempts = await db.fetch("SELECT job_id, worker_id, outcome FROM job_attempts ORDER BY finished_at")
    for job_id in ids:
        history = [(a["worker_id"], a["outcome"]) for a in attempts if a["job_id"] == job_id]
        assert history[-1] == ("rescuer", "succeeded")
        assert ("doomed", "expired") in history


async def test_sigterm_finishes_short_jobs_and_releases_long_ones(fleet: Fleet, db_dsn: str, db: asyncpg.Pool) -> None:
    coordinator = await fleet.coordinator("coordinator", db_dsn)
    assert coordinator.port
    short, long = await enqueue(
        coordinator.port,
        [
            noop(duration=0.5),
            noop(duration=600),
        ],
    )
    leaving = fleet.worker("leaving", coordinator.port, "--slots", "2", "--shutdown-grace", "3")

    async def both_leased() -> bool:
        return await count(db, "state = 'leased' AND leased_by = 'leaving'") == 2

    await eventually(both_leased, what="the worker to lease both jobs")
    leaving.signal(signal.SIGTERM)
    assert await leaving.wait_exit(30) == 0
    states = dict(await db.fetch("SELECT id, state::text FROM jobs"))
    assert states == {short: "succeeded", long: "queued"}
    released = await db.fetchrow("SELECT attempt, outcome FROM job_attempts WHERE job_id = $1", long)
    assert tuple(released) == (1, "released")
    assert await db.fetchval("SELECT attempt FROM jobs WHERE id = $1", long) == 0

    taker = fleet.worker("taker", coordinator.port, "--slots", "1", "--shutdown-grace", "0")

    async def taken_uncharged() -> bool:
        row = await db.fetchrow("SELECT leased_by, attempt FROM jobs WHERE id = $1", long)
        return row is not None and tuple(row) == ("taker", 1)

    await eventually(taken_uncharged, what="another worker to lease the released job as attempt 1")
    taker.signal(signal.SIGTERM)
    assert await taker.wait_exit(30) == 0


async def test_second_signal_exits_at_once(fleet: Fleet, db_dsn: str, db: asyncpg.Pool) -> None:
    coordinator = await fleet.coordinator("coordinator", db_dsn)
    assert coordinator.port
    await enqueue(coordinator.port, [noop(duration=600)])
    stubborn = fleet.worker("stubborn", coordinator.port, "--shutdown-grace", "600")

    async def leased() -> bool:
        return await count(db, "state = 'leased'") == 1

    await eventually(leased, what="the worker to lease the job")
    stubborn.signal(signal.SIGTERM)
    await asyncio.sleep(0.3)  # the first signal must be handled before the second one counts as second
    stubborn.signal(signal.SIGTERM)
    assert await stubborn.wait_exit(10) != 0
    assert await count(db, "state = 'leased'") == 1  # nothing released: the lease will expire


async def test_workers_survive_a_coordinator_restart(fleet: Fleet, db_dsn: str, db: asyncpg.Pool) -> None:
    port = free_port()
    first = await fleet.coordinator("coordinator-1", db_dsn, port=port)
    total = 300
    await enqueue(port, [noop(duration=0.02) for _ in range(total)])
    workers = [fleet.worker(f"worker-{i}", port, "--slots", "4") for i in range(2)]

    async def some_done() -> bool:
        return await count(db, "state = 'succeeded'") >= 20

    await eventually(some_done, what="work to start")
    first.signal(signal.SIGTERM)
    assert await first.wait_exit(30) == 0
    assert await count(db, "state = 'succeeded'") < total, "restart happened too late to test anything"
    await fleet.coordinator("coordinator-2", db_dsn, port=port)
    await eventually(lambda: all_succeeded(db, total), timeout=90, what="every job to finish after the restart")
    assert all(w.proc.poll() is None for w in workers), "a worker died with the coordinator"
    for worker in workers:
        worker.signal(signal.SIGTERM)
    assert [await w.wait_exit(30) for w in workers] == [0, 0]
