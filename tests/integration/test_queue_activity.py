"""GetQueueActivity: attempts ended per minute from the database, and jobs' waits for their lease."""

from __future__ import annotations

import itertools

import asyncpg
import grpc
import pytest
from google.protobuf import duration_pb2

from crawlfleet.v1 import admin_pb2
from tests.conftest import RunningCoordinator
from tests.integration.jobs import make_dead, make_succeeded


async def activity(coord: RunningCoordinator, minutes: int = 60) -> list[admin_pb2.ActivityMinute]:
    request = admin_pb2.GetQueueActivityRequest(window=duration_pb2.Duration(seconds=minutes * 60))
    return list((await coord.admin.GetQueueActivity(request)).minutes)


async def test_every_minute_of_the_window_with_the_attempts_ended_in_it(
    coord: RunningCoordinator, db: asyncpg.Pool
) -> None:
    ok = await make_succeeded(coord, "http://a.example/ok")
    await make_succeeded(coord, "http://a.example/ok2")
    await make_dead(coord, "http://a.example/gone")
    # Moved back in time: one success ended 10 minutes ago after waiting 3 s for its lease. One
    # transaction, so both statements' now() is the same instant.
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE job_attempts SET started_at = now() - interval '10 minutes',"
            " finished_at = now() - interval '10 minutes' WHERE job_id = $1",
            ok,
        )
        await conn.execute("UPDATE jobs SET run_at = now() - interval '10 minutes 3 seconds' WHERE id = $1", ok)

    minutes = await activity(coord)
    assert len(minutes) == 60
    starts = [m.minute.ToSeconds() for m in minutes]
    assert starts == sorted(starts) and all(b - a == 60 for a, b in itertools.pairwise(starts))
    assert sum(m.succeeded for m in minutes) == 2
    assert sum(m.failed for m in minutes) == 1
    earlier = [m for m in minutes if m.succeeded and m is not minutes[-1] and m is not minutes[-2]]
    assert len(earlier) == 1
    assert earlier[0].lease_wait_max.ToMilliseconds() == pytest.approx(3000, abs=50)
    assert earlier[0].HasField("lease_wait_avg")


async def test_a_window_out_of_bounds_names_the_field(coord: RunningCoordinator) -> None:
    for seconds in (30, 25 * 3600):
        request = admin_pb2.GetQueueActivityRequest(window=duration_pb2.Duration(seconds=seconds))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await coord.admin.GetQueueActivity(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "window" in (err.value.details() or "")
