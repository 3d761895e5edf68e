"""Exponential backoff with full jitter, for reconnects and report retries."""

from __future__ import annotations

import random

DEFAULT_INITIAL = 0.1
DEFAULT_CAP = 5.0
DEFAULT_MULTIPLIER = 2.0


class Backoff:
    """Delays uniform in ``[0, min(cap, initial * multiplier**n)]`` for the n-th failure in a row.

    Full jitter spreads a fleet's reconnects after a coordinator restart instead of synchronising
    them into waves.
    """

    def __init__(
        self,
        *,
        initial: float = DEFAULT_INITIAL,
        cap: float = DEFAULT_CAP,
        multiplier: float = DEFAULT_MULTIPLIER,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0 or cap < initial or multiplier < 1:
            raise ValueError("need 0 < initial <= cap and multiplier >= 1")
        self._initial = initial
        self._cap = cap
        self._multiplier = multiplier
        self._rng = rng or random.Random()
        self._failures = 0

    def bound(self) -> float:
        """The upper bound of the next delay."""
        # Capping the exponent keeps the float finite however long an outage lasts.
        exponent = min(self._failures, 64)
        return min(self._cap, self._initial * self._multiplier**exponent)

    def next_delay(self) -> float:
        """Counts one more failure and returns how long to wait before the next try."""
        delay = self._rng.uniform(0, self.bound())
        self._failures += 1
        return delay

    def reset(self) -> None:
        """Called after a success: the next failure starts from the initial bound again."""
        self._failures = 0
