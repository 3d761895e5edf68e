"""Log lines that a caller can trigger at will (refused calls, malformed requests) are rate-limited:
a client must not be able to fill the operator's disk or hide other lines by calling in a loop."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

DEFAULT_LINES_PER_WINDOW = 10
DEFAULT_WINDOW_SECONDS = 10.0


class RateLimitedLog:
    """At most ``lines`` records per ``window`` seconds; the first record after a window in which
    records were dropped says how many."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        lines: int = DEFAULT_LINES_PER_WINDOW,
        window: float = DEFAULT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._lines = lines
        self._window = window
        self._clock = clock
        self._window_start = -float("inf")
        self._logged = 0
        self._dropped = 0

    def log(self, level: int, message: str, *args: object, exc_info: BaseException | None = None) -> None:
        """Logs like ``Logger.log`` unless this window's lines are used up."""
        if not self._logger.isEnabledFor(level):
            return
        now = self._clock()
        if now - self._window_start >= self._window:
            if self._dropped:
                self._logger.log(level, "%d similar line(s) suppressed in the last %.0fs", self._dropped, self._window)
            self._window_start, self._logged, self._dropped = now, 0, 0
        if self._logged >= self._lines:
            self._dropped += 1
            return
        self._logged += 1
        self._logger.log(level, message, *args, exc_info=exc_info)
