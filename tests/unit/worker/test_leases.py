from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.worker.leases import (
    FENCE_HEAP_SLACK,
    MAX_LEASES_PER_HEARTBEAT,
    HeartbeatRejected,
    HeldLease,
    LeaseDeadlines,
    LeaseKeeper,
    local_deadline,
)
from tests.unit.worker.fakes import FakeCoordinator, held, rejected


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


def test_apply_treats_a_completed_lease_as_settled(caplog: pytest.LogCaptureFixture) -> None:
    # The job's Complete committed before the heartbeat reached the coordinator; its answer settles it.
    abandoned = Abandoned()
    keeper = LeaseKeeper(FakeCoordinator(), fraction=1 / 3, on_abandon=abandoned, clock=lambda: 1000.0)
    lease = held(1, deadline=1010)
    keeper.add(lease)
    response = pb.HeartbeatResponse(leases=[pb.LeaseState(job_id=1, status=pb.LEASE_STATUS_COMPLETED)])
    with caplog.at_level("INFO"):
        keeper.apply([lease], response, sent_at=999.0)
    assert abandoned.why == {} and not lease.abandoned
    assert keeper.get(1) is lease and lease.deadline == 1010  # its Complete's answer removes it
    assert [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")] == []


def test_apply_keeps_the_expiry_of_an_unanswered_lease() -> None:
    # The coordinator skips a lease whose row another session has locked: neither extended nor lost.
    abandoned = Abandoned()
    keeper = LeaseKeeper(FakeCoordinator(), fraction=1 / 3, on_abandon=abandoned, clock=lambda: 1000.0)
    busy, free = held(1, deadline=1010), held(2, deadline=1010)
    keeper.add(busy)
    keeper.add(free)
    response = pb.HeartbeatResponse(leases=[pb.LeaseState(job_id=2, status=pb.LEASE_STATUS_EXTENDED)])
    keeper.apply([busy, free], response, sent_at=999.0)
    assert abandoned.why == {} and busy.deadline == 1010 and free.deadline == 999.0 + 30.0


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


async def test_keeper_wakes_for_a_lease_due_before_its_wake_up() -> None:
    abandoned = Abandoned()
    now = [1000.0]
    keeper = LeaseKeeper(FakeCoordinator(), fraction=1 / 3, on_abandon=abandoned, clock=lambda: now[0])
    keeper.add(held(1, deadline=1e9, lease_duration=1e8))  # heartbeat and fence far off: it sleeps
    task = asyncio.create_task(keeper.run())
    await asyncio.sleep(0)  # let it go to sleep (a yield, not a wait for time)
    keeper.add(held(2, deadline=1e9 + 1, lease_duration=1e8))
    assert not keeper._changed.is_set(), "a lease due later must not wake the keeper"
    keeper.add(held(3, deadline=1000.5))  # already inside its fencing margin
    await asyncio.wait_for(abandoned.event.wait(), 5)
    assert set(abandoned.why) == {3}
    assert sorted(lease.job_id for lease in keeper.leases()) == [1, 2]
    keeper.stop()
    await asyncio.wait_for(task, 5)


async def test_keeper_fences_due_leases_only_and_skips_removed_and_extended_ones() -> None:
    abandoned = Abandoned()
    now = [1000.0]
    keeper = LeaseKeeper(
        FakeCoordinator(), fraction=1 / 3, on_abandon=abandoned, clock=lambda: now[0], wall_clock=lambda: 5000.0
    )
    extended, due, removed, later = held(1, deadline=1010), held(2, deadline=1010), held(3, deadline=1010), held(4)
    for lease in (extended, due, removed, later):
        keeper.add(lease)
    keeper.remove(3)
    response = pb.HeartbeatResponse(leases=[pb.LeaseState(job_id=1, status=pb.LEASE_STATUS_EXTENDED)])
    keeper.apply([extended], response, sent_at=1005.0)  # now lasts until 1035
    now[0] = 1009.5  # past the old fencing time (1009) of leases 1-3, before the first heartbeat (1010)
    task = asyncio.create_task(keeper.run())
    await asyncio.wait_for(abandoned.event.wait(), 5)
    assert set(abandoned.why) == {2}
    assert not removed.abandoned
    assert sorted(lease.job_id for lease in keeper.leases()) == [1, 4]
    keeper.stop()
    await asyncio.wait_for(task, 5)


async def test_keeper_fences_a_lease_whose_extension_ends_earlier() -> None:
    abandoned = Abandoned()
    now = [1000.0]
    keeper = LeaseKeeper(
        FakeCoordinator(), fraction=1 / 3, on_abandon=abandoned, clock=lambda: now[0], wall_clock=lambda: 5000.0
    )
    lease = held(1, deadline=1030)
    keeper.add(lease)
    shortened = pb.LeaseState(job_id=1, status=pb.LEASE_STATUS_EXTENDED)
    shortened.lease_expires_at.FromSeconds(5005)  # the coordinator's expiry: 5 s from now
    keeper.apply([lease], pb.HeartbeatResponse(leases=[shortened]), sent_at=1000.0)
    assert lease.deadline == 1005.0
    now[0] = 1004.5
    task = asyncio.create_task(keeper.run())
    await asyncio.wait_for(abandoned.event.wait(), 5)
    assert "self-fenced" in abandoned.why[1]
    keeper.stop()
    await asyncio.wait_for(task, 5)


def test_fence_heap_stays_bounded_when_leases_come_and_go() -> None:
    keeper = LeaseKeeper(FakeCoordinator(), fraction=1 / 3, on_abandon=Abandoned(), clock=lambda: 1000.0)
    keeper.add(held(0))
    for job_id in range(1, 10 * FENCE_HEAP_SLACK):
        keeper.add(held(job_id))
        keeper.remove(job_id)  # settled long before its fencing time
    assert len(keeper) == 1
    assert len(keeper._fences) <= 2 * len(keeper) + FENCE_HEAP_SLACK + 1


async def test_keeper_splits_a_large_heartbeat_into_calls_the_coordinator_accepts() -> None:
    abandoned = Abandoned()
    now = [1000.0]
    coordinator = FakeCoordinator()
    keeper = LeaseKeeper(coordinator, fraction=1 / 3, on_abandon=abandoned, clock=lambda: now[0])
    held_count = 2 * MAX_LEASES_PER_HEARTBEAT + 5
    for job_id in range(1, held_count + 1):
        keeper.add(held(job_id, deadline=1030))
    now[0] = 1011.0
    task = asyncio.create_task(keeper.run())
    await coordinator.wait_for(lambda: sum(map(len, coordinator.heartbeats)) >= held_count)
    keeper.stop()
    await asyncio.wait_for(task, 5)
    assert sorted(map(len, coordinator.heartbeats)) == [5, MAX_LEASES_PER_HEARTBEAT, MAX_LEASES_PER_HEARTBEAT]
    assert sorted(j for call in coordinator.heartbeats for j in call) == list(range(1, held_count + 1))


async def test_keeper_stops_loudly_when_the_coordinator_refuses_the_heartbeat() -> None:
    class Refusing(FakeCoordinator):
        async def heartbeat(self, leases: Sequence[pb.LeaseRef], deadline: float = 10.0) -> pb.HeartbeatResponse:
            self.heartbeats.append([lease.job_id for lease in leases])
            raise rejected()

    now = [1000.0]
    coordinator = Refusing()
    keeper = LeaseKeeper(coordinator, fraction=1 / 3, on_abandon=Abandoned(), clock=lambda: now[0])
    keeper.add(held(1, deadline=1030))
    now[0] = 1011.0
    with pytest.raises(HeartbeatRejected):
        await asyncio.wait_for(keeper.run(), 5)
    assert coordinator.heartbeats == [[1]]  # not retried


def test_lease_deadlines_are_worked_out_per_expiry_as_local_deadline_would() -> None:
    deadlines = LeaseDeadlines(start=100, lease_duration=30, now=101, wall_now=1000)
    soon, later, without = (
        pb.LeasedJob(id=1, lease_expires_at=Timestamp(seconds=1020)),
        pb.LeasedJob(id=2, lease_expires_at=Timestamp(seconds=1029)),
        pb.LeasedJob(id=3),
    )
    for job, expected in ((soon, 121), (later, 130), (without, 130), (soon, 121)):
        assert deadlines.of(job) == expected


async def test_leases_added_together_are_heartbeated_and_fenced_as_if_added_one_by_one() -> None:
    abandoned = Abandoned()
    now = [1000.0]
    coordinator = FakeCoordinator()
    keeper = LeaseKeeper(coordinator, fraction=1 / 3, on_abandon=abandoned, clock=lambda: now[0])
    keeper.add_many([])
    keeper.add_many([held(1, deadline=1030), held(2, deadline=1000.5)])  # 2 is inside its fencing margin
    task = asyncio.create_task(keeper.run())
    await asyncio.wait_for(abandoned.event.wait(), 5)
    assert set(abandoned.why) == {2} and "self-fenced" in abandoned.why[2]
    now[0] = 1011.0  # past the first heartbeat time of lease 1
    keeper._changed.set()
    await coordinator.wait_for(lambda: coordinator.heartbeats == [[1]])
    keeper.stop()
    await asyncio.wait_for(task, 5)
