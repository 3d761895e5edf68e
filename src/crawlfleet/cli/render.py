"""Text for people and JSON for scripts: tables, states, durations, times, id ranges."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message

from crawlfleet.cli.errors import UsageError
from crawlfleet.common.durations import duration_seconds
from crawlfleet.common.states import STATE_NAMES, TERMINAL_STATE_NAMES, JobState
from crawlfleet.v1 import jobs_pb2

# The state names in lifecycle order, and the finished ones (names, as people type and read them).
STATES = STATE_NAMES
TERMINAL_STATES = frozenset(TERMINAL_STATE_NAMES)
# What a terminal acts on rather than shows: C0 and C1 controls (ESC, CSI, BEL, backspace, carriage
# return), DEL, and the Unicode line separators and bidirectional overrides that reorder a line.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_IN_LINES = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def state_name(value: int) -> str:
    """``JOB_STATE_DEAD`` -> ``dead``; a state this CLI does not know shows as its number."""
    try:
        return JobState.from_proto(value).value
    except ValueError:
        return str(value)


def state_value(name: str) -> jobs_pb2.JobState.ValueType:
    """``dead`` -> ``JOB_STATE_DEAD``; an unknown name is a usage error."""
    try:
        return JobState.parse(name).to_proto()
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def parse_duration(text: str) -> float:
    """Seconds of ``90``, ``90s``, ``1h30m``, ``7d``, ``500ms``, ``1.5h``."""
    try:
        return duration_seconds(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def parse_time(text: str, now: dt.datetime) -> dt.datetime:
    """An ISO 8601 time (without a zone: local time), or a duration ago (``1h``: an hour ago)."""
    try:
        parsed = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            return now - dt.timedelta(seconds=parse_duration(text))
        except UsageError:
            raise UsageError(f"not a time: {text!r} (ISO 8601 like 2024-06-03T09:00, or ago like 1h, 2d)") from None
    return parsed if parsed.tzinfo is not None else parsed.astimezone()


def format_duration(seconds: float) -> str:
    """A short human duration: ``450ms``, ``3.2s``, ``4m05s``, ``2h10m``, ``3d4h``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600}h"


def to_datetime(ts: timestamp_pb2.Timestamp) -> dt.datetime:
    return ts.ToDatetime(tzinfo=dt.UTC)


def ago(ts: timestamp_pb2.Timestamp, now: dt.datetime) -> str:
    """``3m05s ago`` (or ``in 10s`` for a time to come); ``-`` when unset."""
    if not ts.seconds and not ts.nanos:
        return "-"
    delta = (now - to_datetime(ts)).total_seconds()
    return f"{format_duration(delta)} ago" if delta >= 0 else f"in {format_duration(-delta)}"


def when(ts: timestamp_pb2.Timestamp, now: dt.datetime) -> str:
    """Local time to the second with its age: ``2024-06-03 11:00:00 (3m05s ago)``; ``-`` when unset."""
    if not ts.seconds and not ts.nanos:
        return "-"
    return f"{to_datetime(ts).astimezone():%Y-%m-%d %H:%M:%S} ({ago(ts, now)})"


def escape(text: str) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``): untrusted strings
    (URLs, error messages, titles, worker ids) cannot move the cursor, recolour or retitle the
    operator's terminal, nor forge a line of output."""
    return _UNSAFE.sub(_escaped, text)


def escape_lines(text: str) -> str:
    """Like ``escape`` but keeps line breaks: for whole blocks of output, as the last line of defence."""
    return _UNSAFE_IN_LINES.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def truncate(text: str, width: int) -> str:
    text = escape(" ".join(text.split()))
    return text if len(text) <= width else text[: width - 1] + "…"


def table(headers: Sequence[str] | None, rows: Iterable[Sequence[object]], *, right: Iterable[int] = ()) -> str:
    """Columns padded to their widest cell (no header row when ``headers`` is None); columns listed
    in ``right`` (numbers) align right. Control characters in cells are escaped."""
    cells = [[str(c) for c in row] for row in ([headers] if headers is not None else [])]
    # Cells often hold untrusted strings: escaped before measuring, so columns stay aligned.
    cells += [[escape(str(c)) for c in row] for row in rows]
    if not cells:
        return ""
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    align_right = set(right)
    lines = []
    for row in cells:
        parts = [
            c.rjust(w) if i in align_right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def id_ranges(ids: Iterable[int]) -> str:
    """``1-4, 7, 9-10``: ids of a large enqueue stay readable."""
    ordered = sorted(set(ids))
    parts: list[str] = []
    start = prev = None
    for i in [*ordered, None]:
        if start is not None and prev is not None and (i is None or i != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ", ".join(parts)


def message_dict(message: Message) -> dict[str, Any]:
    """A message as JSON-ready data, with the .proto field names (``job_id``, not ``jobId``)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def dumps(value: object) -> str:
    """JSON text; with ``ensure_ascii=False`` json leaves C1 controls and the like raw, so they are
    escaped as ``\\u`` sequences here (the same JSON value, harmless on a terminal)."""
    return _UNSAFE.sub(_json_escaped, json.dumps(value, ensure_ascii=False, default=str))


def _json_escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def rate(done: int, seconds: float) -> str:
    return f"{done / seconds:,.0f}/s" if seconds > 0 else "-"
