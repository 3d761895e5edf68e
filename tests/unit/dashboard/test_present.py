"""How the dashboard writes a worker's leases out of its slots."""

from __future__ import annotations

from crawlfleet.dashboard.present import leases_of_slots


def test_leases_out_of_slots_and_just_the_leases_when_slots_are_not_reported() -> None:
    assert leases_of_slots(3, 8) == "3 / 8"
    assert leases_of_slots(0, 4) == "0 / 4"
    assert leases_of_slots(2, 0) == "2"
