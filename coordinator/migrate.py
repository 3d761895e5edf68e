"""Applies the numbered migrations of sql/migrations under a lock, each at most once."""

from __future__ import annotations

import logging

import asyncpg

from coordinator import sql

log = logging.getLogger(__name__)


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply pending migrations in one transaction; return the versions applied.

    The transaction-scoped advisory lock makes coordinators that start together take turns:
    the second one finds everything applied and does nothing.
    """
    async with conn.transaction():
        await conn.execute(sql.query("migration_lock"))
        await conn.execute(sql.query("migration_table_create"))
        applied = {row["version"] for row in await conn.fetch(sql.query("migration_applied_list"))}
        done = []
        for migration in sql.migrations():
            if migration.version in applied:
                continue
            await conn.execute(migration.sql)
            await conn.execute(sql.query("migration_record"), migration.version, migration.name)
            done.append(migration.version)
            log.info("applied migration %04d_%s", migration.version, migration.name)
    return done
