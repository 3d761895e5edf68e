"""The coordinator's transition counters (no server, no database)."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from crawlfleet.coordinator.metrics import CoordinatorMetrics


def totals(metrics: CoordinatorMetrics) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode()
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.endswith("_total") and not s.labels
    }


def test_fail_and_reaper_outcomes_are_counted_by_the_state_they_lead_to() -> None:
    metrics = CoordinatorMetrics()
    metrics.failed("queued", release=False)
    metrics.failed("dead", release=False)
    metrics.failed("queued", release=True)
    metrics.reaped(["queued", "dead", "cancelled"])
    found = totals(metrics)
    assert found["crawlfleet_jobs_retried_total"] == 2
    assert found["crawlfleet_jobs_dead_total"] == 2
    assert found["crawlfleet_jobs_released_total"] == 1
    assert found["crawlfleet_leases_expired_total"] == 3


def test_every_coordinator_has_a_registry_of_its_own() -> None:
    first, second = CoordinatorMetrics(), CoordinatorMetrics()
    first.enqueued(3)
    assert totals(first)["crawlfleet_jobs_enqueued_total"] == 3
    assert totals(second)["crawlfleet_jobs_enqueued_total"] == 0
