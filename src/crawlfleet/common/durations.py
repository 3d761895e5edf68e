"""Durations as people type them: ``90``, ``90s``, ``1h30m``, ``7d``, ``500ms``, ``2w`` (the CLI's
arguments and the coordinator's duration flags read the same grammar)."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def duration_seconds(text: str) -> float:
    """Seconds of a duration (a bare number is seconds); ``ValueError`` when it is none or negative."""
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        if not value or _DURATION.sub("", value):
            raise ValueError(f"not a duration: {text!r} (e.g. 30s, 15m, 1h30m, 7d)") from None
        return sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(value))
    if not seconds >= 0:  # also NaN
        raise ValueError(f"a duration cannot be negative: {text!r}")
    return seconds
