from __future__ import annotations

import asyncio

from crawlfleet.v1 import job_queue_pb2 as pb

from tests.unit.worker.fakes import FakeCoordinator, held
from worker.leases import HeldLease, LeaseKeeper, local_deadline


def test_local_deadline_trusts_the_wall_clock_only_to_shorten() -> None:
    # Clocks agree: the coordinator's expiry is a little earlier than start + duration.
    assert local_deadline(start=100, lease_duration=30, expires_at=1029, now=101, wall_now=1000) == 130
    assert local_deadline(start=100, lease_duration=30, expires_at=1020, now=101, wall_now=1000) == 121
    # Worker clock far behind: the expiry looks later than the duration allows.
    assert local_deadline(start=100, lease_duration=30, expires_at=5000, now=101, wall_now=1000) == 130
    # Worker clock far ahead: the expiry looks past; the duration alone is used.
    assert local_deadline(start=100, lease_duration=30, expires_at=900, now=101, wall_now=1000) == 130
    assert local_deadline(start=100, lease_duration=30, expires_at=None, now=101, wall_now=1000) == 130


def test_fence_margin() -> None:
    assert held(1, deadline=100, lease_duration=30).fence_at() == 99
    assert held(1, deadline=100, lease_duration=2).fence_at() == 99.8


class Abandoned:
    def __init__(self) -> None:
        self.why: dict[int, str] = {}
        self.event = asyncio.Event()

    def __call__(self, lease: HeldLease, why: str) -> None:
        self.why[lease.job_id] = why
        self.event.set()


def test_apply_extends_and_abandons() -> None:
    abandoned = Abandoned()
    now = [1000.0]
    keeper = LeaseKeeper(
        FakeCoordinator(), fraction=1 / 3, on_abandon=abandoned, clock=lambda: now[0], wall_clock=lambda: 5000.0
    )
    leases = [held(1, deadline=1010), held(2, deadline=1010), held(3, deadline=1010), held(4, deadline=1010)]
    for lease in leases:
        keeper.add(lease)
    keeper.remove(4)  # settled while the heartbeat was in flight
    response = pb.HeartbeatResponse(
        leases=[
            pb.LeaseState(job_id=1, status=pb.LEASE_STATUS_EXTENDED),
            pb.LeaseState(job_id=2, status=pb.LEASE_STATUS_LOST),
            pb.LeaseState(job_id=3, status=pb.LEASE_STATUS_CANCELLED),
            pb.LeaseState(job_id=4, status=pb.LEASE_STATUS_LOST),
        ]
    )
    keeper.apply(leases, response, sent_at=999.0)
    assert leases[0].deadline == 999.0 + 30.0
    assert set(abandoned.why) == {2, 3}
    assert leases[1].abandoned and leases[2].abandoned and not leases[3].abandoned
    assert [lease.job_id for lease in keeper.leases()] == [1]


async def test_keeper_self_fences_when_the_lease_runs_out() -> None:
    abandoned = Abandoned()
    now = [1000.0]
    coordinator = FakeCoordinator()
    keeper = LeaseKeeper(coordinator, fraction=1 / 3, on_abandon=abandoned, clock=lambda: now[0])
    keeper.add(held(7, deadline=1000.5))  # already inside the fencing margin
    task = asyncio.create_task(keeper.run())
    await asyncio.wait_for(abandoned.event.wait(), 5)
    assert "self-fenced" in abandoned.why[7]
    assert len(keeper) == 0
    keeper.stop()
    await asyncio.wait_for(task, 5)


async def test_keeper_heartbeats_all_leases_in_one_call() -> None:
    abandoned = Abandoned()
    now = [1000.0]
    coordinator = FakeCoordinator()
    coordinator.heartbeat_status[2] = pb.LEASE_STATUS_LOST
    keeper = LeaseKeeper(coordinator, fraction=1 / 3, on_abandon=abandoned, clock=lambda: now[0])
    keeper.add(held(1, deadline=1030))
    keeper.add(held(2, deadline=1030))
    now[0] = 1011.0  # past the first heartbeat time (lease_duration / 3 = 10 s)
    task = asyncio.create_task(keeper.run())
    await asyncio.wait_for(abandoned.event.wait(), 5)
    assert coordinator.heartbeats == [[1, 2]]
    assert set(abandoned.why) == {2}
    keeper.stop()
    await asyncio.wait_for(task, 5)
