"""Wakes long-polling Lease calls when jobs become available, and WatchJobs streams when jobs finish.

One LISTEN connection per coordinator hears every coordinator's NOTIFY, on one channel per kind of
event; waiters also wake on a periodic re-check, which covers notifies missed while the connection
was down. WatchJobs streams are woken all at once (``Wakeup``); Lease waiters only as many as there
are new jobs (``LeaseWakeup``), since each woken waiter runs a claim statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol

import asyncpg

log = logging.getLogger(__name__)
_RECONNECT_MAX_SECONDS = 5.0


class NotifyTarget(Protocol):
    """What a LISTEN channel's notifies are forwarded to."""

    def on_notify(self, payload: str) -> None: ...


class Wakeup:
    """A broadcast signal: `current()` before a check, then wait on it, so no wake-up is missed."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def current(self) -> asyncio.Event:
        return self._event

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    def on_notify(self, payload: str) -> None:
        self.notify()


class LeaseWakeup:
    """Wakes waiting Lease calls, oldest first, as many as there are new jobs.

    A Lease takes a ``ticket()`` before each claim and waits on it after an empty one, so a job
    that arrives during the claim still wakes it. ``notify(n)`` wakes the n oldest tickets; an
    unknown count (None) wakes them all: released or reaped jobs, a requeue, the LISTEN connection
    coming back, shutdown. A ticket woken during a claim that then returned jobs hands the wake-up
    on, since that claim may not have seen the new job (at worst one extra empty claim).
    """

    def __init__(self) -> None:
        self._waiting: dict[LeaseTicket, None] = {}  # insertion-ordered: oldest first

    @property
    def waiting(self) -> int:
        """Tickets not yet woken."""
        return len(self._waiting)

    def ticket(self) -> LeaseTicket:
        ticket = LeaseTicket(self)
        self._waiting[ticket] = None
        return ticket

    def notify(self, count: int | None = None) -> None:
        woken = len(self._waiting) if count is None else min(count, len(self._waiting))
        for _ in range(woken):
            ticket = next(iter(self._waiting))
            del self._waiting[ticket]
            ticket.event.set()

    def on_notify(self, payload: str) -> None:
        """A ``crawlfleet_jobs`` payload is the number of jobs that became due; empty: unknown."""
        self.notify(int(payload) if payload.isdigit() else None)

    def forget(self, ticket: LeaseTicket) -> None:
        """A ticket's Lease stopped waiting; a wake-up it got but did not act on goes to the next."""
        self._waiting.pop(ticket, None)
        if ticket.event.is_set() and not ticket.acted_on:
            self.notify(1)


class LeaseTicket:
    """One Lease's place in line for a wake-up; a context manager that gives the place back."""

    def __init__(self, owner: LeaseWakeup) -> None:
        self._owner = owner
        self.event = asyncio.Event()
        # The Lease saw the wake-up and claims again. Otherwise (woken during a claim that returned
        # jobs or hit the deadline, or the call was cancelled) the wake-up is handed on at exit.
        self.acted_on = False

    async def wait(self, timeout: float) -> bool:
        """True if woken within timeout (the caller then claims again)."""
        self.acted_on = await wait_for(self.event, timeout)
        return self.acted_on

    def __enter__(self) -> LeaseTicket:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._owner.forget(self)


async def wait_for(event: asyncio.Event, timeout: float) -> bool:
    """True if the event fired within timeout."""
    if event.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
    return event.is_set()


class NotifyListener:
    """Keeps a LISTEN connection open (reconnecting) and forwards each channel's notifies to its Wakeup."""

    def __init__(self, dsn: str, wakeups: Mapping[str, NotifyTarget]) -> None:
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

    def _on_notify(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        self._wakeups[channel].on_notify(payload)

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
                    wakeup.on_notify("")
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
