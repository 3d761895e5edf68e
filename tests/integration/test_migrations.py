"""Migrations: the schema they build, running twice, one transaction each, and coordinators racing
on an empty database."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

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
    "crawl_host_policies",
    "crawl_host_counts",
    "crawl_path_counts",
    "crawl_job_counts",
    "crawl_job_count_deltas",
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
            assert states == "{queued,leased,succeeded,dead,cancelled,skipped}"
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


@pytest.fixture
async def empty_db(pg_admin_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a database no migration has touched."""
    dsn = await pg.create_database(pg_admin_dsn, migrated=False)
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()
        await pg.drop_database(pg_admin_dsn, dsn)


def _only(monkeypatch: pytest.MonkeyPatch, migrations: tuple[sql.Migration, ...]) -> None:
    """The runner sees these migrations instead of the shipped ones."""
    monkeypatch.setattr(sql, "migrations", lambda: migrations)


async def _applied(conn: asyncpg.Connection) -> list[int]:
    return [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]


async def test_each_migration_commits_on_its_own_so_a_new_enum_value_is_usable_by_the_next(
    empty_db: asyncpg.Connection,
) -> None:
    # 0009 adds 'skipped' to job_state and 0010 names it in constraints: PostgreSQL refuses a new
    # enum value in the transaction that added it, so this passes only with a transaction each.
    assert await migrate(empty_db) == [m.version for m in sql.migrations()]
    job_id = await empty_db.fetchval(
        """INSERT INTO jobs (kind, state, spec, run_at, created_at, max_attempts, retry_initial_ms,
                             retry_multiplier, retry_max_ms, finished_at)
           VALUES ('noop', 'skipped', '', now(), now(), 1, 0, 1, 0, now()) RETURNING id"""
    )
    assert await empty_db.fetchval("SELECT state::text FROM jobs WHERE id = $1", job_id) == "skipped"
    with pytest.raises(asyncpg.CheckViolationError, match="jobs_finished_iff_terminal"):
        await empty_db.execute("UPDATE jobs SET finished_at = NULL WHERE id = $1", job_id)


async def test_a_failing_migration_keeps_the_ones_before_it_and_is_retried_next_time(
    empty_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = sql.migrations()
    broken = dataclasses.replace(shipped[1], sql="CREATE TABLE half_done (x int); SELECT no_such_function();")
    _only(monkeypatch, (shipped[0], broken))
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await migrate(empty_db)
    assert await _applied(empty_db) == [1]  # 0001 committed; the broken one left nothing behind
    assert await empty_db.fetchval("SELECT to_regclass('half_done')") is None

    _only(monkeypatch, shipped)
    assert await migrate(empty_db) == [m.version for m in shipped[1:]]
    assert await _applied(empty_db) == [m.version for m in shipped]


async def test_a_database_migrated_by_an_older_coordinator_gets_only_the_new_migrations(
    empty_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = sql.migrations()
    known = [m.name for m in shipped].index("job_state_skipped")  # a coordinator before the skipped state
    _only(monkeypatch, shipped[:known])
    assert await migrate(empty_db) == list(range(1, known + 1))
    _only(monkeypatch, shipped)
    assert await migrate(empty_db) == [m.version for m in shipped[known:]]
    assert "skipped" in await empty_db.fetchval("SELECT enum_range(NULL::job_state)::text[]")


async def test_racing_runners_apply_each_migration_once(pg_admin_dsn: str) -> None:
    # Each transaction takes the lock and reads what is applied afresh: runners interleaving
    # migration by migration still apply every one exactly once between them.
    dsn = await pg.create_database(pg_admin_dsn, migrated=False)
    conns = [await asyncpg.connect(dsn) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(migrate(conn) for conn in conns))
        assert sorted(v for versions in applied for v in versions) == [m.version for m in sql.migrations()]
        assert await _applied(conns[0]) == [m.version for m in sql.migrations()]
    finally:
        for conn in conns:
            await conn.close()
        await pg.drop_database(pg_admin_dsn, dsn)


async def test_the_crawl_rate_index_built_beforehand_concurrently_lets_its_migration_pass(
    empty_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What docs/operations.md tells an operator with a large jobs table: build the index without
    # holding off writes, then upgrade; the migration must then go through and keep that index.
    shipped = sql.migrations()
    before = [m.name for m in shipped].index("crawl_rate_by_job")
    _only(monkeypatch, shipped[:before])
    await migrate(empty_db)
    await empty_db.execute(
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_crawl_succeeded ON jobs (crawl_id, finished_at)"
        " WHERE crawl_id IS NOT NULL AND state = 'succeeded'"
    )
    built = await empty_db.fetchval("SELECT 'jobs_crawl_succeeded'::regclass::oid")
    _only(monkeypatch, shipped)
    assert await migrate(empty_db) == [m.version for m in shipped[before:]]
    assert await empty_db.fetchval("SELECT 'jobs_crawl_succeeded'::regclass::oid") == built
