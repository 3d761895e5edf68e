"""A bounded fault run: two coordinators and four workers (one in a network namespace of its own)
drain a mixed noop queue while workers, a coordinator, the network and the database fail. Afterwards
the database must show every job finished as its spec says, succeeded at most once, never under two
leases at a time, within its attempt budget, with exact kept counts and no lease left.

Faults, in order, each waiting for the state it needs (never for a time): kill -9 of a worker and a
replacement, cancels, SIGTERM of a worker, pg_terminate_backend of every coordinator connection, a
row lock on leased jobs held by the test while a worker's namespace is partitioned for longer than
the lease, kill -9 of a coordinator (the workers fail over to the other one) and a burst of jobs,
and a fast restart of PostgreSQL.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import grpc
import pytest

from crawlfleet.v1 import admin_pb2, admin_pb2_grpc, job_queue_pb2_grpc, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests import netns, pg
from tests.e2e.processes import Fleet, Process
from tests.helpers import assert_counts_exact, eventually, seconds

pytestmark = pytest.mark.e2e

LEASE_SECONDS = 2.5
SLOTS = "6"
# How many jobs of each kind of spec, and the state each must end in.
QUICK, LONG, RETRYABLE, FATAL, CANCELLED, BURST = 1000, 40, 100, 50, 10, 300
RETRYABLE_ATTEMPTS = 3
# Enough attempts that the faults (expiries) cannot exhaust a job meant to succeed.
ROOMY_ATTEMPTS = 10
# Connection losses the read side rides out: the test itself terminates and restarts the server.
DATABASE_GONE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)

# Finished attempts of one job whose lease intervals intersect (a running one extends to infinity).
OVERLAPPING_ATTEMPTS = """
    SELECT a.job_id, a.worker_id AS first_worker, b.worker_id AS second_worker
    FROM job_attempts AS a JOIN job_attempts AS b
      ON a.job_id = b.job_id AND a.lease_token < b.lease_token
     AND a.started_at < coalesce(b.finished_at, 'infinity') AND b.started_at < coalesce(a.finished_at, 'infinity')"""
PER_JOB = """
    SELECT j.id, j.state::text, j.attempt, j.max_attempts, j.last_error,
           count(a.job_id) FILTER (WHERE a.outcome = 'succeeded') AS successes,
           count(a.job_id) FILTER (WHERE a.outcome <> 'released') AS charged,
           count(a.job_id) FILTER (WHERE a.outcome = 'running') AS running,
           (array_agg(a.outcome ORDER BY a.started_at DESC))[1] AS last_outcome,
           (array_agg(a.error_type ORDER BY a.started_at DESC))[1] AS last_error_type
    FROM jobs AS j LEFT JOIN job_attempts AS a ON a.job_id = j.id
    GROUP BY j.id"""


def policy(attempts: int) -> jobs_pb2.RetryPolicy:
    return jobs_pb2.RetryPolicy(
        initial_interval=seconds(0.05),
        backoff_coefficient=2.0,
        maximum_interval=seconds(0.5),
        maximum_attempts=attempts,
    )


def spec(duration: float, attempts: int = ROOMY_ATTEMPTS, fail: str = "", retryable: bool = False) -> jobs_pb2.JobSpec:
    noop = jobs_pb2.NoopSpec(duration=seconds(duration), fail_message=fail, fail_retryable=retryable)
    return jobs_pb2.JobSpec(noop=noop, retry_policy=policy(attempts))


def initial_specs() -> list[tuple[str, jobs_pb2.JobSpec]]:
    """Every category but the burst, shuffled (a fixed seed) so each runs throughout the drain."""
    specs = [("quick", spec(0.3)) for _ in range(QUICK)]
    specs += [("long", spec(LEASE_SECONDS * 1.6)) for _ in range(LONG)]  # outlives its lease: heartbeats
    specs += [("retryable", spec(0.05, RETRYABLE_ATTEMPTS, "flaky", True)) for _ in range(RETRYABLE)]
    specs += [("fatal", spec(0.05, fail="broken")) for _ in range(FATAL)]
    specs += [("cancelled", spec(60)) for _ in range(CANCELLED)]  # ends only by its cancel
    random.Random(7).shuffle(specs)
    return specs


class Database:
    """Reads of the test database that ride out the connection losses the test causes."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def _retry(self, method: str, query: str, *args: object) -> Any:
        deadline = time.monotonic() + 30
        while True:
            try:
                return await getattr(self.pool, method)(query, *args)
            except DATABASE_GONE:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def count(self, where: str, *args: object) -> int:
        return int(await self._retry("fetchval", f"SELECT count(*) FROM jobs WHERE {where}", *args))

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        return list(await self._retry("fetch", query, *args))

    async def fetchval(self, query: str, *args: object) -> Any:
        return await self._retry("fetchval", query, *args)


@pytest.fixture
def namespace() -> Iterator[netns.Namespace]:
    missing = netns.available()
    if missing is not None:
        pytest.skip(f"the fault run partitions a worker in a network namespace: {missing}")
    created = netns.Namespace.create(3, {})
    try:
        yield created
    finally:
        created.delete()


@pytest.fixture
async def database(db_dsn: str) -> AsyncIterator[Database]:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=4)
    assert pool is not None
    yield Database(pool)
    pool.terminate()  # its connections may be gone with the restart; nothing to say goodbye to


async def enqueue(channel: grpc.aio.Channel, specs: list[jobs_pb2.JobSpec]) -> list[int]:
    response = await job_queue_pb2_grpc.JobQueueStub(channel).Enqueue(pb.EnqueueRequest(jobs=specs), timeout=60)
    return [job.id for job in response.jobs]


async def leases_of(database: Database, worker: Process, at_least: int = 1) -> None:
    async def holds() -> bool:
        return await database.count("state = 'leased' AND leased_by = $1", worker.name) >= at_least

    await eventually(holds, timeout=30, interval=0.1, what=f"{worker.name} to hold {at_least} lease(s)")


async def terminate_coordinator_connections(database: Database) -> int:
    return int(
        await database.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'crawlfleet-coordinator' AND datname = current_database()"
        )
    )


async def hold_row_locks(dsn: str, hold: float) -> list[int]:
    """FOR UPDATE on a few leased jobs for `hold` seconds: heartbeats, completes and the reaper wait or skip."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            rows = await conn.fetch(
                "SELECT id FROM jobs WHERE state = 'leased' AND leased_by <> 'fenced' ORDER BY id LIMIT 5 FOR UPDATE"
            )
            await asyncio.sleep(hold)  # the fault: the lock held this long
        return [row["id"] for row in rows]
    finally:
        await conn.close()


async def partition(namespace: netns.Namespace, hold: float) -> None:
    namespace.set_link(up=False)
    try:
        await asyncio.sleep(hold)  # the fault: the partition held this long
    finally:
        namespace.set_link(up=True)


@pytest.mark.timeout(110)
async def test_fault_run_loses_duplicates_and_strands_nothing(
    fleet: Fleet, db_dsn: str, pg_admin_dsn: str, database: Database, namespace: netns.Namespace
) -> None:
    host = namespace.host_address
    # Listening beyond loopback without tokens: the test network is private to this test.
    coordinator_args = ("--insecure-no-auth", "--lease-seconds", str(LEASE_SECONDS), "--metrics-listen", "off")
    first = await fleet.coordinator("coordinator-a", db_dsn, *coordinator_args, host=host)
    second = await fleet.coordinator("coordinator-b", db_dsn, *coordinator_args, host=host)
    a_first = f"ipv4:{host}:{first.port},{host}:{second.port}"  # pick_first: a, and b once a is gone
    b_first = f"ipv4:{host}:{second.port},{host}:{first.port}"

    planned = initial_specs()
    async with grpc.aio.insecure_channel(f"{host}:{first.port}") as channel:
        ids = await enqueue(channel, [s for _, s in planned])
    category = {job_id: name for job_id, (name, _) in zip(ids, planned, strict=True)}

    def worker(name: str, target: str, *extra: str, inside: bool = False) -> Process:
        prefix = namespace.command() if inside else ()
        args = ("--slots", SLOTS, "--metrics-listen", "off", *extra)
        return fleet.worker(name, 0, *args, coordinator=target, prefix=prefix)

    steady = worker("steady", b_first)
    doomed = worker("doomed", a_first)
    leaving = worker("leaving", a_first, "--shutdown-grace", "1")
    fenced = worker("fenced", a_first, inside=True)

    async def under_way() -> bool:
        return await database.count("state = 'succeeded'") >= 100

    await eventually(under_way, timeout=30, interval=0.1, what="the fleet to get going")
    # A worker dies without a word and another takes its place.
    await leases_of(database, doomed, at_least=3)
    doomed.signal(signal.SIGKILL)
    assert await doomed.wait_exit(10) == -signal.SIGKILL
    replacement = worker("replacement", a_first)

    async with grpc.aio.insecure_channel(f"{host}:{second.port}") as admin_channel:
        admin = admin_pb2_grpc.AdminStub(admin_channel)
        for job_id in [j for j, name in category.items() if name == "cancelled"]:
            await admin.CancelJob(admin_pb2.CancelJobRequest(job_id=job_id), timeout=30)

        # A worker leaves politely: in-flight work finishes or is released.
        await leases_of(database, leaving)
        leaving.signal(signal.SIGTERM)
        assert await leaving.wait_exit(30) == 0

        # Every coordinator connection dies at once (pool, LISTEN, reaper).
        assert await terminate_coordinator_connections(database) >= 2

        # Row locks on leased jobs while a worker is cut off for longer than its lease.
        await leases_of(database, fenced)
        locked, _ = await asyncio.gather(hold_row_locks(db_dsn, 3.0), partition(namespace, LEASE_SECONDS + 1.5))
        assert locked, "no leased job to lock"

        # A coordinator dies; the workers that used it fail over to the other; a burst arrives.
        first.signal(signal.SIGKILL)
        assert await first.wait_exit(10) == -signal.SIGKILL
        first_died = await database.fetchval("SELECT now()")
        burst = await enqueue(admin_channel, [spec(0.2) for _ in range(BURST)])
        category.update(dict.fromkeys(burst, "quick"))

    # The database restarts under everyone (only a server the tests run themselves).
    if pg.restart_unavailable() is None:
        await pg.fast_restart(await pg.data_directory(pg_admin_dsn))
    assert await database.count("state IN ('queued', 'leased')") > 0, "the faults came after the drain"

    async def drained() -> bool:
        return await database.count("state IN ('queued', 'leased')") == 0

    await eventually(drained, timeout=75, interval=0.2, what="the queue to drain")
    survivors = [steady, replacement, fenced]
    assert [w.name for w in survivors if w.proc.poll() is not None] == [], "a worker died with the faults"
    assert second.proc.poll() is None, "the surviving coordinator died"

    expected_state = {"quick": "succeeded", "long": "succeeded", "retryable": "dead", "fatal": "dead"}
    expected_state["cancelled"] = "cancelled"
    rows = {row["id"]: row for row in await database.fetch(PER_JOB)}
    assert sorted(rows) == sorted(category), "jobs lost or made up"
    wrong = {
        job_id: (category[job_id], row["state"], row["attempt"], row["last_error"])
        for job_id, row in rows.items()
        if row["state"] != expected_state[category[job_id]]
    }
    assert wrong == {}, "jobs that ended in a state their spec does not call for"
    for job_id, row in rows.items():
        assert row["successes"] == (1 if row["state"] == "succeeded" else 0), dict(row)
        assert row["running"] == 0, dict(row)
        assert 1 <= row["attempt"] <= row["max_attempts"] or category[job_id] == "cancelled", dict(row)
        assert row["attempt"] == row["charged"], dict(row)  # every charged attempt is in the history
        if category[job_id] == "retryable":
            assert row["attempt"] == RETRYABLE_ATTEMPTS, dict(row)
        if category[job_id] == "fatal":
            assert (row["last_outcome"], row["last_error_type"]) == ("failed", "noop_failure"), dict(row)
    assert [dict(r) for r in await database.fetch(OVERLAPPING_ATTEMPTS)] == []
    assert await database.count("state = 'leased' OR lease_expires_at IS NOT NULL") == 0, "a lease was left"
    await assert_counts_exact(database.pool)

    # The faults did what they were for: the killed and the partitioned worker lost leases to expiry.
    expired = await database.fetch("SELECT DISTINCT worker_id FROM job_attempts WHERE outcome = 'expired'")
    assert {"doomed", "fenced"} <= {row["worker_id"] for row in expired}

    # The workers that used coordinator-a went on with coordinator-b.
    after = await database.fetch(
        "SELECT DISTINCT worker_id FROM job_attempts WHERE outcome = 'succeeded' AND started_at > $1", first_died
    )
    assert {"replacement", "fenced"} <= {row["worker_id"] for row in after}

    for survivor in survivors:
        survivor.signal(signal.SIGTERM)
    assert [await w.wait_exit(30) for w in survivors] == [0, 0, 0]
