"""Migrations: the schema they build, running twice, and coordinators racing on an empty database."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from crawlfleet.common.states import STATE_NAMES
from crawlfleet.coordinator.server import Coordinator
from crawlfleet.coordinator.storage import sql
from crawlfleet.coordinator.storage.migrate import MigrationMismatch, migrate
from tests import pg
from tests.conftest import coordinator_settings

EXPECTED_TABLES = {
    "jobs",
    "job_attempts",
    "workers",
    "schema_migrations",
    "pages",
    "images",
    "thumbnails",
    "page_images",
    "job_counts",
    "job_count_deltas",
    "job_watchers",
    "hosts",
    "host_policies",
    "crawls",
    "crawl_urls",
    "crawl_host_counts",
    "crawl_path_counts",
}
EXPECTED_INDEXES = {
    "jobs_available",
    "jobs_target_url_leased",
    "jobs_dedupe_key_live",
    "jobs_lease_expiry",
    "jobs_finished",
    "jobs_created_at",
    "jobs_dead_id",
    "jobs_host_queue",
    "jobs_host_leased",
    "jobs_crawl",
}


async def test_migrations_build_the_declared_schema_and_rerun_as_noop(pg_admin_dsn: str) -> None:
    dsn = await pg.create_database(pg_admin_dsn, migrated=False)
    try:
        conn = await asyncpg.connect(dsn)
        try:
            assert await migrate(conn) == [m.version for m in sql.migrations()]
            assert await migrate(conn) == []
            tables = {
                r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            }
            assert tables == EXPECTED_TABLES
            indexes = {
                r["indexname"] for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'jobs'")
            }
            assert indexes >= EXPECTED_INDEXES
            states = await conn.fetchval("SELECT enum_range(NULL::job_state)::text")
            assert states == "{queued,leased,succeeded,dead,cancelled}"
        finally:
            await conn.close()
    finally:
        await pg.drop_database(pg_admin_dsn, dsn)


async def test_a_migration_edited_after_it_was_applied_is_refused(db: asyncpg.Pool) -> None:
    await db.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    async with db.acquire() as conn:
        with pytest.raises(MigrationMismatch, match="0001_jobs changed after it was applied"):
            await migrate(conn)
    await db.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (999, 'future', 'x')")
    await db.execute("UPDATE schema_migrations SET checksum = $1 WHERE version = 1", sql.migrations()[0].checksum)
    async with db.acquire() as conn:
        with pytest.raises(MigrationMismatch, match="older than the database schema"):
            await migrate(conn)


async def test_every_named_query_prepares_against_the_schema(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        for name, text in sql.queries().items():
            if name.startswith("migration_"):
                continue
            await conn.prepare(text)  # fails on a typo or a missing column


async def test_the_job_state_type_has_the_states_of_the_code(db: asyncpg.Pool) -> None:
    labels = await db.fetchval("SELECT enum_range(NULL::job_state)::text[]")
    assert tuple(labels) == STATE_NAMES


async def test_two_coordinators_racing_on_an_empty_database_both_come_up(pg_admin_dsn: str) -> None:
    dsn = await pg.create_database(pg_admin_dsn, migrated=False)
    coordinators = [Coordinator(coordinator_settings(dsn)) for _ in range(2)]
    try:
        await asyncio.gather(*(c.start() for c in coordinators))
        assert all(c.port for c in coordinators)
        conn = await asyncpg.connect(dsn)
        try:
            versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        finally:
            await conn.close()
        assert versions == [m.version for m in sql.migrations()]
    finally:
        for c in coordinators:
            await c.stop(grace=0)
        await pg.drop_database(pg_admin_dsn, dsn)
