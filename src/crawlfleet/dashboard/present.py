"""How values read on the pages: Jinja filters for timestamps, durations, states and sizes."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from crawlfleet.common.states import PROTO_PREFIX
from crawlfleet.v1 import crawls_pb2, jobs_pb2

NOTHING = "—"


def is_set(value: timestamp_pb2.Timestamp | duration_pb2.Duration) -> bool:
    # Unset message fields read as zero: the API never means the epoch or a zero wait by them.
    return bool(value.seconds or value.nanos)


def when(value: timestamp_pb2.Timestamp) -> str:
    """``2026-12-03 20:31:05Z``, or a dash when unset."""
    if not is_set(value):
        return NOTHING
    return value.ToDatetime(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def iso(value: timestamp_pb2.Timestamp) -> str:
    return value.ToDatetime(dt.UTC).isoformat() if is_set(value) else ""


def seconds_text(seconds: float) -> str:
    """``850 ms``, ``4.2 s``, ``3 min 5 s``, ``2 h 10 min``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def duration(value: duration_pb2.Duration) -> str:
    return seconds_text(value.ToNanoseconds() / 1e9) if is_set(value) else NOTHING


def _enum_name(enum: Any, value: int, prefix: str) -> str:
    # A value added to the API after this dashboard was built shows as its number, not a 500.
    try:
        return str(enum.Name(value)).removeprefix(prefix).lower()
    except ValueError:
        return str(value)


def job_state(value: int) -> str:
    """``JOB_STATE_DEAD`` -> ``dead``."""
    return _enum_name(jobs_pb2.JobState, value, PROTO_PREFIX)


def crawl_state(value: int) -> str:
    return _enum_name(crawls_pb2.CrawlState, value, "CRAWL_STATE_")


def render_mode(value: int) -> str:
    return _enum_name(jobs_pb2.RenderMode, value, "RENDER_MODE_")


def byte_size(value: int) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def pretty_json(text: str) -> str:
    """A JSON document indented for reading; as given when it does not parse."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def percent(part: int, whole: int) -> float:
    return 0.0 if whole <= 0 else min(100.0, 100.0 * part / whole)


def leases_of_slots(in_flight: int, slots: int) -> str:
    """A worker's leases held out of its slots ("3 / 8"); just the leases when it reports no slots."""
    return f"{in_flight} / {slots}" if slots > 0 else str(in_flight)


FILTERS: dict[str, Any] = {
    "when": when,
    "iso": iso,
    "duration": duration,
    "job_state": job_state,
    "crawl_state": crawl_state,
    "render_mode": render_mode,
    "byte_size": byte_size,
    "pretty_json": pretty_json,
}
