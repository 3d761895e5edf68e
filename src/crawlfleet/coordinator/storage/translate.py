"""The one boundary where asyncpg errors become coordinator errors: callers of the stores never
see a driver exception."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from crawlfleet.coordinator.errors import DatabaseBusy, DatabaseUnavailable

# A connection in one of these states may not be reused: the server went away under it (a restart,
# pg_terminate_backend) and the driver's protocol state is broken ("cannot switch to state 12;
# another operation is in progress"). DataError, an InterfaceError, is a bad argument instead.
_BROKEN_CONNECTION_ERRORS = (asyncpg.InternalClientError, asyncpg.InterfaceError)
_UNAVAILABLE_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    *_BROKEN_CONNECTION_ERRORS,
)
# lock_timeout and statement_timeout (coordinator settings): the call may succeed when retried.
_BUSY_ERRORS = (asyncpg.LockNotAvailableError, asyncpg.QueryCanceledError)


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Turn losing the database, or a statement that timed out, into DatabaseUnavailable here."""
    try:
        yield
    except _BUSY_ERRORS as exc:
        raise DatabaseBusy(f"database busy: {exc.__class__.__name__}: {exc}") from exc
    except _UNAVAILABLE_ERRORS as exc:
        raise DatabaseUnavailable(f"database unavailable: {exc.__class__.__name__}: {exc}") from exc


@asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection with errors translated; one left broken by the driver is closed rather
    than handed to the next caller (the pool opens a fresh one in its place)."""
    async with translated(), pool.acquire() as conn:
        try:
            yield conn
        except _BROKEN_CONNECTION_ERRORS as exc:
            if not isinstance(exc, asyncpg.DataError):
                conn.terminate()
            raise
