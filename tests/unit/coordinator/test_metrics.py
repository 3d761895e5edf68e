"""The coordinator's transition counters (no server, no database)."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from crawlfleet.coordinator.metrics import CoordinatorMetrics
from crawlfleet.coordinator.politeness import PAUSE_REASON_CLASSES, pause_reason_class


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


def test_pause_reasons_fall_into_bounded_classes() -> None:
    assert pause_reason_class("operator: the site asked us to stop") == "operator"
    assert pause_reason_class("operator") == "operator"
    assert pause_reason_class("circuit_breaker: 3 failures in a row, the last timeout") == "circuit_breaker"
    assert pause_reason_class("retry_after: the server asked to wait (http_429)") == "retry_after"
    assert pause_reason_class("robots_unreachable: HTTP 503") == "robots_unreachable"
    assert pause_reason_class("") == pause_reason_class("shop.example: anything") == "other"
    labels = {
        s.labels["reason"]
        for family in text_string_to_metric_families(generate_latest(CoordinatorMetrics().registry).decode())
        for s in family.samples
        if s.name == "crawlfleet_hosts_paused"
    }
    assert labels == {*PAUSE_REASON_CLASSES, "other"}  # every class from the start, at 0
