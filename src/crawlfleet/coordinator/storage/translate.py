"""The one boundary where asyncpg errors become coordinator errors: callers of the stores never
see a driver exception."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from crawlfleet.coordinator.errors import DatabaseUnavailable

_UNAVAILABLE_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
)


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Turn losing the database into DatabaseUnavailable at this one boundary."""
    try:
        yield
    except _UNAVAILABLE_ERRORS as exc:
        raise DatabaseUnavailable(f"database unavailable: {exc.__class__.__name__}: {exc}") from exc
