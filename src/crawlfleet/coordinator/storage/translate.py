"""The one boundary where asyncpg errors become coordinator errors: callers of the stores never
see a driver exception."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from crawlfleet.coordinator.errors import DatabaseBusy, DatabaseUnavailable

_UNAVAILABLE_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
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
