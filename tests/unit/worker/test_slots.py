from __future__ import annotations

import asyncio

import pytest

from crawlfleet.worker.slots import Backlog


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_room_is_the_free_slots_while_the_backlog_has_room() -> None:
    backlog = Backlog(5, unreported_bound=10)
    assert backlog.room == 5
    backlog.started(3)
    assert backlog.room == 2
    backlog.finished(unreported=True)
    assert (backlog.room, backlog.unreported) == (3, 1)


async def test_wait_for_room_takes_at_most_what_it_is_asked() -> None:
    backlog = Backlog(5, unreported_bound=10)
    assert await backlog.wait_for_room(3) == 3
    assert await backlog.wait_for_room(10) == 5  # nothing started meanwhile: all slots are free


async def test_no_lease_while_every_slot_runs_until_a_job_finishes() -> None:
    backlog = Backlog(2, unreported_bound=10)
    backlog.started(2)
    waiting = asyncio.create_task(backlog.wait_for_room(10))
    await settle()
    assert not waiting.done()
    backlog.finished(unreported=False)
    assert await asyncio.wait_for(waiting, 5) == 1


async def test_no_lease_while_the_backlog_is_full_until_a_report_settles() -> None:
    backlog = Backlog(2, unreported_bound=3)
    backlog.awaiting_report(3)  # eager jobs: finished at once, never in a slot
    assert backlog.room == 0
    waiting = asyncio.create_task(backlog.wait_for_room(10))
    await settle()
    assert not waiting.done()
    backlog.started(0)
    backlog.reported()
    assert await asyncio.wait_for(waiting, 5) == 2


async def test_a_cancelled_wait_takes_nothing() -> None:
    backlog = Backlog(1, unreported_bound=1)
    backlog.started(1)
    waiting = asyncio.create_task(backlog.wait_for_room(1))
    await settle()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    backlog.finished(unreported=False)
    assert backlog.room == 1


def test_needs_a_slot_and_a_backlog() -> None:
    with pytest.raises(ValueError):
        Backlog(0, unreported_bound=1)
    with pytest.raises(ValueError):
        Backlog(1, unreported_bound=0)
