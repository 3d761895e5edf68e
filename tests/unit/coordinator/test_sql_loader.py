from __future__ import annotations

import pytest

from crawlfleet.coordinator.storage import sql


def test_parse_queries_splits_on_name_headers() -> None:
    text = "-- file comment\n\n-- name: a_get\n-- why\nSELECT 1;\n\n-- name: b_set\nUPDATE t SET x = 1;\n"
    assert sql.parse_queries(text) == {"a_get": "-- why\nSELECT 1;", "b_set": "UPDATE t SET x = 1;"}


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        sql.parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")


def test_every_query_the_queue_uses_exists() -> None:
    for name in (
        "job_enqueue_many",
        "job_lease_available",
        "job_heartbeat_many",
        "job_complete_if_leased_many",
        "job_fail_if_leased",
        "job_reap_expired",
        "job_cancel",
        "job_requeue_dead",
        "worker_seen",
    ):
        assert sql.query(name).strip()
    with pytest.raises(KeyError):
        sql.query("no_such_query")


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [m.version for m in sql.migrations()]
    assert versions == list(range(1, len(versions) + 1))
