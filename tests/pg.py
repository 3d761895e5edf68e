"""The test PostgreSQL: a DSN from CRAWLFLEET_TEST_DATABASE_URL, else the embedded server.

Each test gets a fresh database cloned from a template that has every migration applied.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from crawlfleet.coordinator.storage import database
from crawlfleet.coordinator.storage.migrate import migrate

TEMPLATE_DB = "crawlfleet_test_template"
_counter = itertools.count()


def with_database(dsn: str, name: str) -> str:
    """The same server, another database."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def start_server(data_dir: Path) -> str:
    """The admin DSN of the server the tests use."""
    given = os.environ.get("CRAWLFLEET_TEST_DATABASE_URL")
    if given:
        return given
    dsn = await asyncio.to_thread(database.start_embedded, data_dir)
    conn = await asyncpg.connect(dsn)
    try:
        # A throwaway server: durability only costs test time here.
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            await conn.execute(f"ALTER SYSTEM SET {setting} = off")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()
    return dsn


async def create_template(admin_dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    finally:
        await conn.close()
    conn = await asyncpg.connect(with_database(admin_dsn, TEMPLATE_DB))
    try:
        await migrate(conn)
    finally:
        await conn.close()


async def create_database(admin_dsn: str, *, migrated: bool = True) -> str:
    """A fresh database (migrated from the template, or empty); returns its DSN."""
    name = f"crawlfleet_test_{os.getpid()}_{next(_counter)}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        template = TEMPLATE_DB if migrated else "template0"
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY file_copy")
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


async def drop_database(admin_dsn: str, dsn: str) -> None:
    name = urlsplit(dsn).path.lstrip("/")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()
