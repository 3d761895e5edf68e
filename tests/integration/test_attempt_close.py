"""Closing an attempt is done in place (a HOT update): it changes no column a B-tree index holds,
so a Complete writes no new attempt row version or index entries."""

from __future__ import annotations

import asyncpg

from tests.conftest import RunningCoordinator
from tests.helpers import eventually
from tests.integration.jobs import make_succeeded

JOBS = 12


async def test_every_attempt_closed_by_a_complete_is_a_hot_update(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    for n in range(JOBS):
        await make_succeeded(coord, f"http://a.example/{n}")

    async def updates() -> tuple[int, int] | None:
        # Other sessions' statistics reach the view within a second or so of their transactions.
        row = await db.fetchrow(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'job_attempts'"
        )
        assert row is not None
        return (row["n_tup_upd"], row["n_tup_hot_upd"]) if row["n_tup_upd"] >= JOBS else None

    assert await eventually(updates, what="the attempts' updates in the statistics") == (JOBS, JOBS)
