from __future__ import annotations

import asyncio

import pytest

from crawlfleet.worker.slots import Slots


async def test_take_takes_every_free_slot_up_to_the_bound() -> None:
    slots = Slots(5)
    assert await slots.take(3) == 3
    assert await slots.take(10) == 2
    assert slots.free == 0
    slots.give(4)
    assert await slots.take(10) == 4


async def test_take_waits_for_a_slot_given_back() -> None:
    slots = Slots(1)
    assert await slots.take(10) == 1
    waiting = asyncio.create_task(slots.take(10))
    await asyncio.sleep(0)
    assert not waiting.done()
    slots.give()
    assert await asyncio.wait_for(waiting, 5) == 1
    assert slots.free == 0


async def test_a_cancelled_take_takes_nothing() -> None:
    slots = Slots(1)
    await slots.take(1)
    waiting = asyncio.create_task(slots.take(1))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    slots.give()
    assert slots.free == 1


def test_needs_a_slot() -> None:
    with pytest.raises(ValueError):
        Slots(0)
