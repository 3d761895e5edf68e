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
    """Apply pending migrations, each in a transaction of its own; return the versions applied.

    One transaction per migration, because some statements take effect only once committed: a
    value added to an enum (ALTER TYPE ... ADD VALUE) cannot be used in the transaction that
    added it, so the migration that uses it must come in a later one. Each transaction takes the
    transaction-scoped advisory lock and reads what is applied afresh, so coordinators that start
    together still take turns: the second one finds the migrations applied and does nothing. An
    applied migration whose file has changed since raises MigrationMismatch.
    """
    done: list[int] = []
    while True:
        async with conn.transaction():
            pending = await _lock_and_find_pending(conn)
            if pending is None:
                return done
            await conn.execute(pending.sql)
            await q.MIGRATION_RECORD.execute(
                conn, version=pending.version, name=pending.name, checksum=pending.checksum
            )
        done.append(pending.version)
        log.info("applied migration %04d_%s", pending.version, pending.name)


async def _lock_and_find_pending(conn: asyncpg.Connection) -> sql.Migration | None:
    """Under the migration lock (held until the transaction ends): the first migration not applied
    yet, or None. Raises MigrationMismatch when the applied ones are not these files."""
    known = {m.version: m for m in sql.migrations()}
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
    return next((m for m in sql.migrations() if m.version not in applied), None)
