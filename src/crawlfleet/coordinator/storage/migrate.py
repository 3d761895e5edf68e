"""Applies the numbered migrations of sql/migrations under a lock, each at most once."""

from __future__ import annotations

import logging

import asyncpg

from crawlfleet.coordinator.storage import sql
from crawlfleet.coordinator.storage import statements as q

log = logging.getLogger(__name__)


class MigrationMismatch(Exception):
    """The database was migrated with files other than these: refuse rather than run on a schema
    that differs from what the code expects."""


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply pending migrations in one transaction; return the versions applied.

    The transaction-scoped advisory lock makes coordinators that start together take turns:
    the second one finds everything applied and does nothing. An applied migration whose file
    has changed since raises MigrationMismatch.
    """
    known = {m.version: m for m in sql.migrations()}
    async with conn.transaction():
        await q.MIGRATION_TIMEOUTS_LIFT.execute(conn)
        await q.MIGRATION_LOCK.execute(conn)
        await q.MIGRATION_TABLE_CREATE.execute(conn)
        applied = {row.version: row for row in await q.MIGRATION_APPLIED_LIST.fetch(conn)}
        for version, row in applied.items():
            migration = known.get(version)
            if migration is None:
                raise MigrationMismatch(
                    f"the database has migration {version:04d}_{row.name}, which this coordinator does not know: "
                    "this coordinator is older than the database schema; upgrade it"
                )
            if row.checksum != migration.checksum:
                raise MigrationMismatch(
                    f"migration {version:04d}_{row.name} changed after it was applied to this database; "
                    "migrations are immutable: add a new numbered one instead"
                )
        done = []
        for migration in sql.migrations():
            if migration.version in applied:
                continue
            await conn.execute(migration.sql)
            await q.MIGRATION_RECORD.execute(
                conn, version=migration.version, name=migration.name, checksum=migration.checksum
            )
            done.append(migration.version)
            log.info("applied migration %04d_%s", migration.version, migration.name)
    return done
