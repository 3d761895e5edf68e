"""Claims commit asynchronously, Completes durably: a crash may lose claims, never a completed job.

The crash test runs its own embedded PostgreSQL with the durable defaults (the shared test server
runs with fsync and synchronous_commit off, where a crash proves nothing) and stops it with
`pg_ctl restart -m immediate` mid-run.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
import pytest

from crawlfleet.coordinator.server import Coordinator
from crawlfleet.coordinator.storage import database
from crawlfleet.coordinator.storage import statements as q
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import job_queue_pb2_grpc
from tests import pg
from tests.conftest import RunningCoordinator, coordinator_settings
from tests.helpers import error_info, eventually, lease_request, noop, noop_result

JOBS = 200
BATCH = 20


async def claim(conn: asyncpg.Connection, max_jobs: int) -> list[object]:
    rows = await q.JOB_LEASE_AVAILABLE.fetch(
        conn,
        worker_id="w1",
        max_jobs=max_jobs,
        kinds=[],
        lease_ms=30_000,
        now=None,
        principal=None,
        host_concurrency=1,
        host_delay_ms=0,
        obey_robots=False,
        saturated_recheck_ms=1000,
    )
    return list(rows)


async def test_a_claim_turns_synchronous_commit_off_for_its_own_transaction_only(
    coord: RunningCoordinator, db_dsn: str
) -> None:
    await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[noop(), noop()]))
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute("SET synchronous_commit = on")
        async with conn.transaction():
            assert len(await claim(conn, 1)) == 1
            assert await conn.fetchval("SHOW synchronous_commit") == "off"
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
        # The statement on its own (as the coordinator runs it) leaves the session as it was.
        assert len(await claim(conn, 1)) == 1
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
    finally:
        await conn.close()


@dataclass
class DurableServer:
    data_dir: Path
    dsn: str


@pytest.fixture
async def durable_server() -> AsyncIterator[DurableServer]:
    """A server of its own, with PostgreSQL's durable defaults, that this test may crash."""
    if reason := pg.restart_unavailable():
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="crawlfleet-crash-pg-"))
    data_dir = root / "pgdata"
    admin_dsn = await asyncio.to_thread(database.start_embedded, data_dir)
    conn = await asyncpg.connect(admin_dsn)
    try:
        # The WAL writer writes asynchronous commits out within this delay: at its longest, what
        # a commit does not flush itself is still in memory when the crash comes.
        await conn.execute("ALTER SYSTEM SET wal_writer_delay = '10s'")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()
    await pg.create_template(admin_dsn)
    dsn = await pg.create_database(admin_dsn)
    yield DurableServer(data_dir, dsn)
    await asyncio.to_thread(database.stop_embedded, data_dir)
    await asyncio.to_thread(pg.stop_if_running, data_dir)
    shutil.rmtree(root, ignore_errors=True)


async def lease_all_we_can(stub: job_queue_pb2_grpc.JobQueueAsyncStub) -> list[pb.LeasedJob]:
    return list((await stub.Lease(lease_request(max_jobs=BATCH))).jobs)


async def complete(stub: job_queue_pb2_grpc.JobQueueAsyncStub, jobs: list[pb.LeasedJob]) -> None:
    done = [pb.CompletedJob(job_id=j.id, lease_token=j.lease_token, result=noop_result()) for j in jobs]
    await stub.Complete(pb.CompleteRequest(jobs=done))


async def test_a_crash_loses_no_completed_job_and_completes_none_twice(durable_server: DurableServer) -> None:
    conn = await asyncpg.connect(durable_server.dsn)
    try:
        # What makes the crash meaningful: commits wait for the disk unless a statement says otherwise.
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
        assert await conn.fetchval("SHOW fsync") == "on"
    finally:
        await conn.close()
    coordinator = Coordinator(coordinator_settings(durable_server.dsn, lease_seconds=30.0))
    await coordinator.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{coordinator.port}")
    stub = job_queue_pb2_grpc.JobQueueStub(channel)
    acknowledged: dict[int, str] = {}  # job id -> the token its Complete was acknowledged under

    def acknowledge(jobs: list[pb.LeasedJob]) -> None:
        for job in jobs:
            assert job.id not in acknowledged, f"job {job.id} completed twice"
            acknowledged[job.id] = job.lease_token

    async def lease_and_complete() -> list[pb.LeasedJob]:
        jobs = await lease_all_we_can(stub)
        # A job whose Complete was acknowledged is never leased again.
        assert not {j.id for j in jobs} & acknowledged.keys()
        if jobs:
            await complete(stub, jobs)
            acknowledge(jobs)
        return jobs

    try:
        await stub.Enqueue(pb.EnqueueRequest(jobs=[noop() for _ in range(JOBS)]))
        # First crash: right after an acknowledged Complete, which must survive it. Second crash:
        # after a claim that followed the Complete, which may not (its commit did not wait for
        # the disk); its jobs are then leased again, and their Complete is refused.
        for claim_before_crash in (False, True):
            for _ in range(3):
                assert await lease_and_complete()
            in_flight = await lease_all_we_can(stub) if claim_before_crash else []
            await pg.crash_restart(durable_server.data_dir)

            async def answered_after_restart(in_flight: list[pb.LeasedJob] = in_flight) -> bool:
                try:
                    if in_flight:
                        await complete(stub, in_flight)
                    else:
                        await lease_and_complete()
                except grpc.aio.AioRpcError as exc:
                    if exc.code() == grpc.StatusCode.UNAVAILABLE:
                        return False  # the coordinator's connections are coming back
                    # The claim was lost with the crash: its token is unknown, the Complete refused.
                    assert exc.code() == grpc.StatusCode.ABORTED
                    assert error_info(exc).reason == "LEASE_LOST"
                    return True
                acknowledge(in_flight)
                return True

            await eventually(answered_after_restart, what="the coordinator to answer after the restart")

        async def drained() -> bool:
            await lease_and_complete()
            return len(acknowledged) == JOBS

        await eventually(drained, what="every job to be completed")
    finally:
        await channel.close()
        await coordinator.stop(grace=0)

    conn = await asyncpg.connect(durable_server.dsn)
    try:
        jobs = {r["id"]: r for r in await conn.fetch("SELECT id, state, lease_token::text AS token FROM jobs")}
        successes = await conn.fetch(
            "SELECT job_id, count(*) AS n FROM job_attempts WHERE outcome = 'succeeded' GROUP BY job_id"
        )
    finally:
        await conn.close()
    assert len(jobs) == JOBS
    # Every acknowledged Complete survived, under the token it was acknowledged with: no completed
    # job was lost, and none was leased and completed again.
    for job_id, token in acknowledged.items():
        assert jobs[job_id]["state"] == "succeeded", job_id
        assert jobs[job_id]["token"] == token, job_id
    assert {r["job_id"]: r["n"] for r in successes} == dict.fromkeys(jobs, 1)
