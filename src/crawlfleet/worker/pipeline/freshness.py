"""How long an image response may be reused without asking its server again (RFC 9111, section 4.2).

The worker is one cache serving many jobs, so it reads the header a shared cache reads
(``s-maxage`` before ``max-age``). ``no-store`` is never kept; ``no-cache`` is kept but asked
about (revalidated) every time. Without an explicit lifetime, the heuristic lifetime is a tenth
of the time since ``Last-Modified``; without that either, the worker's own bound applies. Every
lifetime is capped by that bound, so a server's "a year" still means at most ``--image-cache-ttl``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Mapping

HEURISTIC_FRACTION = 0.1


def reuse_lifetime(headers: Mapping[str, str], *, now: float, cap: float) -> float | None:
    """Seconds the response may be reused for, between 0 and ``cap``; None if it must not be kept.

    ``headers`` have lower-case names; ``now`` is the wall clock (seconds since the epoch), which
    ``Expires``, ``Date`` and ``Last-Modified`` are compared with.
    """
    directives = cache_directives(headers.get("cache-control", ""))
    if "no-store" in directives:
        return None
    if "no-cache" in directives:
        return 0.0
    for name in ("s-maxage", "max-age"):
        if name in directives:
            seconds = _seconds(directives[name])
            return min(seconds, cap) if seconds is not None else 0.0  # a malformed lifetime is stale
    expires = headers.get("expires")
    if expires is not None:
        expires_at = _http_date(expires)
        date = _http_date(headers.get("date", "")) or now
        return min(max(expires_at - date, 0.0), cap) if expires_at is not None else 0.0
    last_modified = _http_date(headers.get("last-modified", ""))
    if last_modified is not None:
        date = _http_date(headers.get("date", "")) or now
        return min(max(date - last_modified, 0.0) * HEURISTIC_FRACTION, cap)
    return cap


def cache_directives(value: str) -> dict[str, str]:
    """Cache-Control directives by lower-case name; a directive without a value maps to ""."""
    directives: dict[str, str] = {}
    for part in value.split(","):
        name, _, argument = part.strip().partition("=")
        if name:
            directives.setdefault(name.lower(), argument.strip().strip('"'))
    return directives


def _seconds(text: str) -> float | None:
    return float(text) if text.isdigit() else None


def _http_date(text: str) -> float | None:
    """An HTTP date as seconds since the epoch; None when absent or malformed."""
    if not text:
        return None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" dates parse naive; HTTP dates are always UTC
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()
