"""The worker's metrics: outcome accounting, scrape-time values, the listen address."""

from __future__ import annotations

import asyncio

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.worker.leases import HeldLease, LeaseKeeper
from crawlfleet.worker.metrics import WorkerMetrics
from tests.unit.worker.fakes import FakeCoordinator, held


def samples(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_abandon_reasons_of_the_lease_keeper_map_to_outcomes() -> None:
    # Pins the keeper's reasons: a reworded reason must not turn cancellations into "lost".
    metrics = WorkerMetrics(["noop"], in_flight=lambda: 0, browser_restarts=lambda: 0)
    abandoned = asyncio.Event()

    def on_abandon(lease: HeldLease, why: str) -> None:
        metrics.abandoned(lease.job.kind, why)
        abandoned.set()

    now = [1000.0]
    keeper = LeaseKeeper(FakeCoordinator(), fraction=1 / 3, on_abandon=on_abandon, clock=lambda: now[0])
    leases = [held(1, deadline=1010), held(2, deadline=1010)]
    for lease in leases:
        keeper.add(lease)
    answers = [
        pb.LeaseState(job_id=1, status=pb.LEASE_STATUS_LOST),
        pb.LeaseState(job_id=2, status=pb.LEASE_STATUS_CANCELLED),
    ]
    keeper.apply(leases, pb.HeartbeatResponse(leases=answers), sent_at=999.0)
    abandoned.clear()
    keeper.add(held(3, deadline=1000.5))  # inside the fencing margin already
    task = asyncio.create_task(keeper.run())
    await asyncio.wait_for(abandoned.wait(), 5)
    keeper.stop()
    await asyncio.wait_for(task, 5)
    noop = metrics.jobs["noop"]
    assert (noop.lost, noop.cancelled, noop.fenced) == (1, 1, 1)


def test_outcomes_and_callbacks_are_read_when_scraped() -> None:
    held_now = [3]
    metrics = WorkerMetrics(
        ["noop", "scrape"],
        in_flight=lambda: held_now[0],
        browser_restarts=lambda: 2,
        image_counts=lambda: {"downloaded": 5, "found_stored": 2, "processed": 3},
    )
    metrics.complete_settled("noop", completed=True)
    metrics.complete_settled("noop", completed=False)
    metrics.fail_reported("scrape", release=False, taken=True)
    metrics.fail_reported("scrape", release=True, taken=True)
    metrics.fail_reported("scrape", release=True, taken=False)
    metrics.complete_settled("other", completed=True)  # a kind seen only now
    metrics.stages.observe("fetch", 0.2)
    held_now[0] = 1
    found = samples(metrics)
    jobs = "crawlfleet_worker_jobs_total"
    assert found[jobs, (("kind", "noop"), ("outcome", "succeeded"))] == 1
    assert found[jobs, (("kind", "noop"), ("outcome", "lost"))] == 1
    assert found[jobs, (("kind", "noop"), ("outcome", "fenced"))] == 0
    assert found[jobs, (("kind", "scrape"), ("outcome", "failed"))] == 1
    assert found[jobs, (("kind", "scrape"), ("outcome", "released"))] == 1
    assert found[jobs, (("kind", "scrape"), ("outcome", "lost"))] == 1
    assert found[jobs, (("kind", "other"), ("outcome", "succeeded"))] == 1
    assert found["crawlfleet_worker_jobs_in_flight", ()] == 1
    assert found["crawlfleet_worker_browser_restarts_total", ()] == 2
    images = "crawlfleet_worker_images_total"
    assert found[images, (("how", "found_stored"),)] == 2 and found[images, (("how", "processed"),)] == 3
    assert found[images, (("how", "reused"),)] == 0  # every series from the start
    assert found["crawlfleet_worker_stage_seconds_count", (("stage", "fetch"),)] == 1
    assert found["crawlfleet_worker_stage_seconds_count", (("stage", "render"),)] == 0
