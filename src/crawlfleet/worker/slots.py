"""The worker's backlog bound: how many jobs the lease loop may ask for right now.

Two counts, no per-job semaphore: jobs running (at most ``slots``) and finished jobs whose
Complete is not yet acknowledged (``unreported``). The lease loop asks for the free slots, and
asks for nothing while the unreported backlog is at its bound, so a coordinator that falls behind
slows leasing down instead of letting results (and leases to heartbeat) pile up without limit.
"""

from __future__ import annotations

import asyncio


class Backlog:
    """Counts of a worker's running and unreported jobs, and a wait for room to lease more.

    Only the lease loop waits; every change that may make room wakes it.
    """

    def __init__(self, slots: int, unreported_bound: int) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        if unreported_bound < 1:
            raise ValueError(f"unreported_bound must be at least 1, got {unreported_bound}")
        self.slots = slots
        self.unreported_bound = unreported_bound
        self.running = 0
        self.unreported = 0
        self._changed = asyncio.Event()

    @property
    def room(self) -> int:
        """Jobs the lease loop may ask for now: the free slots, none while the backlog is full."""
        if self.unreported >= self.unreported_bound:
            return 0
        return self.slots - self.running

    async def wait_for_room(self, most: int) -> int:
        """Waits until jobs may be leased, then says how many, at most ``most``."""
        while (room := self.room) <= 0:
            self._changed.clear()
            await self._changed.wait()
        return min(room, most)

    def started(self, count: int) -> None:
        """``count`` leased jobs began to run."""
        self.running += count

    def finished(self, *, unreported: bool) -> None:
        """A running job ended; ``unreported``: its result now awaits its Complete."""
        self.running -= 1
        if unreported:
            self.unreported += 1
        self._changed.set()

    def awaiting_report(self, count: int) -> None:
        """``count`` jobs finished without running in a slot (eager ones) await their Complete."""
        self.unreported += count

    def reported(self, count: int = 1) -> None:
        """``count`` finished jobs' Completes were settled (or their leases abandoned)."""
        self.unreported -= count
        self._changed.set()
