from __future__ import annotations

import random

import pytest

from crawlfleet.worker.backoff import Backoff


def test_bounds_grow_exponentially_up_to_the_cap() -> None:
    backoff = Backoff(initial=0.1, cap=5.0, rng=random.Random(1))
    bounds = []
    for _ in range(12):
        bounds.append(backoff.bound())
        backoff.next_delay()
    assert bounds[:4] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert max(bounds) == 5.0
    assert bounds[-1] == 5.0


def test_delays_are_full_jitter_within_the_bound() -> None:
    backoff = Backoff(initial=0.1, cap=5.0, rng=random.Random(7))
    for _ in range(200):
        bound = backoff.bound()
        assert 0 <= backoff.next_delay() <= bound


def test_reset_starts_over_and_long_outages_stay_finite() -> None:
    backoff = Backoff(rng=random.Random(3))
    for _ in range(10_000):
        backoff.next_delay()
    assert backoff.bound() == 5.0
    backoff.reset()
    assert backoff.bound() == pytest.approx(0.1)


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        Backoff(initial=0)
    with pytest.raises(ValueError):
        Backoff(initial=2, cap=1)
