"""Fixtures shared by the integration and end-to-end tiers."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg
import grpc
import pytest

from crawlfleet.coordinator.politeness import Politeness
from crawlfleet.coordinator.server import Coordinator
from crawlfleet.coordinator.settings import CoordinatorSettings
from crawlfleet.coordinator.storage import database
from crawlfleet.coordinator.storage.queue import Queue
from crawlfleet.v1 import admin_pb2_grpc, job_queue_pb2_grpc
from tests import pg


@pytest.fixture(scope="session")
async def pg_admin_dsn() -> AsyncIterator[str]:
    # Not under pytest's basetemp: pytest prunes old basetemps, even one a concurrent run still uses.
    data_dir = Path(tempfile.mkdtemp(prefix="crawlfleet-test-pg-"))
    dsn = await pg.start_server(data_dir / "pgdata")
    await pg.create_template(dsn)
    yield dsn
    await asyncio.to_thread(database.stop_embedded, data_dir / "pgdata")
    await asyncio.to_thread(pg.stop_if_running, data_dir / "pgdata")
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
async def db_dsn(pg_admin_dsn: str) -> AsyncIterator[str]:
    """A fresh migrated database for this test."""
    dsn = await pg.create_database(pg_admin_dsn)
    yield dsn
    await pg.drop_database(pg_admin_dsn, dsn)


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture
def queue(db: asyncpg.Pool) -> Queue:
    return Queue(db)


# Tests of other things than politeness lease as fast as the queue allows; tests of politeness
# pass their own.
UNTHROTTLED = Politeness(host_concurrency=10_000, host_delay_seconds=0.0, obey_robots=False)


def coordinator_settings(dsn: str, **overrides: object) -> CoordinatorSettings:
    """Coordinator settings for tests: port 0, a short lease, fast re-checks."""
    base = CoordinatorSettings(
        listen="127.0.0.1:0",
        database_url=dsn,
        pool_size=4,
        lease_seconds=5.0,
        recheck_seconds=0.2,
        reap_interval_seconds=0.2,
        shutdown_grace_seconds=2.0,
        metrics_listen="off",  # tests that scrape metrics pass "127.0.0.1:0"
        politeness=UNTHROTTLED,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


@dataclass
class RunningCoordinator:
    coordinator: Coordinator
    channel: grpc.aio.Channel
    queue: job_queue_pb2_grpc.JobQueueAsyncStub
    admin: admin_pb2_grpc.AdminAsyncStub

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.coordinator.port}"


StartCoordinator = Callable[..., Awaitable[RunningCoordinator]]


@pytest.fixture
async def start_coordinator(db_dsn: str) -> AsyncIterator[StartCoordinator]:
    """Start in-process coordinators on the test database; all are stopped at the end."""
    running: list[RunningCoordinator] = []

    async def start(**overrides: object) -> RunningCoordinator:
        coordinator = Coordinator(coordinator_settings(db_dsn, **overrides))
        await coordinator.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{coordinator.port}")
        handle = RunningCoordinator(
            coordinator, channel, job_queue_pb2_grpc.JobQueueStub(channel), admin_pb2_grpc.AdminStub(channel)
        )
        running.append(handle)
        return handle

    yield start
    for handle in running:
        await handle.channel.close()
        await handle.coordinator.stop(grace=0)


@pytest.fixture
async def coord(start_coordinator: StartCoordinator) -> RunningCoordinator:
    return await start_coordinator()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
