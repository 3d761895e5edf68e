"""Job slots: the lease loop takes every free slot at once, each finished job gives its slot back."""

from __future__ import annotations

import asyncio


class Slots:
    """A counting semaphore for a single taker that takes all free slots in one step.

    ``asyncio.Semaphore`` would need one ``acquire`` (and a ``locked()`` check) per slot; taking
    them in bulk keeps the per-job cost of "slots before leases" to one ``give``.
    """

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        self._free = count
        self._freed = asyncio.Event()

    @property
    def free(self) -> int:
        """Slots not taken right now."""
        return self._free

    async def take(self, most: int) -> int:
        """Waits until a slot is free, then takes every free one, but at most ``most``."""
        while self._free <= 0:
            self._freed.clear()
            await self._freed.wait()
        taken = min(self._free, most)
        self._free -= taken
        return taken

    def give(self, count: int = 1) -> None:
        """Returns ``count`` taken slots."""
        self._free += count
        self._freed.set()
