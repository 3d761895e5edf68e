"""Wakes long-polling Lease calls when jobs become available, and WatchJobs streams when jobs finish.

One LISTEN connection per coordinator hears every coordinator's NOTIFY, on one channel per kind of
event; waiters also wake on a periodic re-check, which covers notifies missed while the connection
was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import asyncpg

log = logging.getLogger(__name__)
_RECONNECT_MAX_SECONDS = 5.0


class Wakeup:
    """A broadcast signal: `current()` before a claim, then wait on it, so no wake-up is missed."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def current(self) -> asyncio.Event:
        return self._event

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()


async def wait_for(event: asyncio.Event, timeout: float) -> bool:
    """True if the event fired within timeout."""
    if event.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
    return event.is_set()


class NotifyListener:
    """Keeps a LISTEN connection open (reconnecting) and forwards each channel's notifies to its Wakeup."""

    def __init__(self, dsn: str, wakeups: Mapping[str, Wakeup]) -> None:
        self._dsn = dsn
        self._wakeups = dict(wakeups)
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notify-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _on_notify(self, _conn: Any, _pid: int, channel: str, _payload: str) -> None:
        self._wakeups[channel].notify()

    async def _run(self) -> None:
        delay = 0.1
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, server_settings={"application_name": "crawlfleet-listen"})
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                for channel in self._wakeups:
                    await conn.add_listener(channel, self._on_notify)
                self.connected.set()
                delay = 0.1
                # Jobs may have arrived (or finished) while we were not listening.
                for wakeup in self._wakeups.values():
                    wakeup.notify()
                await lost.wait()
                log.warning("LISTEN connection lost; reconnecting")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("LISTEN connection failed: %s; retrying in %.1fs", exc, delay)
            finally:
                self.connected.clear()
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX_SECONDS)
