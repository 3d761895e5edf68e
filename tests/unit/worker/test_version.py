"""The WorkerInfo a worker sends on Lease carries its configured slots."""

from __future__ import annotations

from crawlfleet.worker.settings import WorkerSettings
from crawlfleet.worker.version import worker_info


def test_worker_info_reports_the_configured_slots() -> None:
    info = worker_info(WorkerSettings(worker_id="w", slots=12, kinds=("scrape",)))
    assert (info.worker_id, info.slots, list(info.kinds)) == ("w", 12, ["scrape"])
