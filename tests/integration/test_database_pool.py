"""The coordinator's connection pool: its connections come ready for the queue's statements."""

from __future__ import annotations

from crawlfleet.coordinator.storage import database
from tests import pg


async def test_a_pooled_connection_has_looked_up_the_queues_types_before_its_first_call(db_dsn: str) -> None:
    pool = await database.create_pool(db_dsn, size=1)
    statements: list[str] = []
    try:
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda record: statements.append(record.query))
            rows = await conn.fetch("SELECT 'queued'::job_state AS state, ARRAY['running']::crawl_state[] AS states")
    finally:
        await pool.close()
    assert rows[0]["state"] == "queued" and rows[0]["states"] == ["running"]
    # Only the call itself: asyncpg needed no type look-up (a query of pg_catalog.pg_type) first.
    assert len(statements) == 1 and "pg_type" not in statements[0]


async def test_a_pool_opened_before_the_migrations_still_works(pg_admin_dsn: str) -> None:
    dsn = await pg.create_database(pg_admin_dsn, migrated=False)
    try:
        pool = await database.create_pool(dsn, size=2)
        try:
            assert await pool.fetchval("SELECT to_regtype('job_state') IS NULL")
        finally:
            await pool.close()
    finally:
        await pg.drop_database(pg_admin_dsn, dsn)
