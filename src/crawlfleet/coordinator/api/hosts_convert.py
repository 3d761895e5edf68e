"""Host requests to query values and host rows to messages, for the host calls of the Admin service.

Hosts and patterns are checked as common/hosts.py spells them (the form jobs' hosts are stored
in), so a typo is refused rather than matching nothing. A host's limits in force are the policy's,
else the fleet defaults of this coordinator (its politeness flags).
"""

from __future__ import annotations

import re

from google.protobuf import duration_pb2

from crawlfleet.common.hosts import MAX_HOST_LENGTH, is_host, is_host_pattern
from crawlfleet.coordinator.api import convert
from crawlfleet.coordinator.errors import InvalidArgument
from crawlfleet.coordinator.politeness import Politeness
from crawlfleet.coordinator.storage.host_rows import HostPolicyRow, HostRow
from crawlfleet.v1 import admin_pb2 as pb

# The bounds of host_policies' columns (migration 0007).
MAX_POLICY_CONCURRENCY = 10_000
MAX_POLICY_DELAY_SECONDS = 24 * 3600.0
MAX_NOTE = 500
MAX_PAUSE_REASON = 500
# Longer than this, pause until resumed.
MAX_PAUSE_SECONDS = 365 * 24 * 3600.0
_HOST_SPELLING = "lower case, IDNA A-labels, the port only when not the scheme's default"
_PREFIX = re.compile(r"[a-z0-9_.:\[\]-]*")


def host_name(value: str, field: str) -> str:
    """A host as jobs' hosts are spelled (``shop.example``, ``shop.example:8443``)."""
    if not value:
        raise InvalidArgument(field, "is required")
    if not is_host(value):
        raise InvalidArgument(field, f"is not a host as the fleet spells hosts ({_HOST_SPELLING}): {value[:100]!r}")
    return value


def host_pattern(value: str, field: str) -> str:
    """An exact host, or ``*.domain`` for the domain and every host under it."""
    if not value:
        raise InvalidArgument(field, "is required")
    if not is_host_pattern(value):
        raise InvalidArgument(
            field, f"is not a host (shop.example, shop.example:8443) or a domain (*.shop.example): {value[:100]!r}"
        )
    return value


def host_prefix(value: str, field: str) -> str | None:
    if len(value) > MAX_HOST_LENGTH:
        raise InvalidArgument(field, f"is longer than {MAX_HOST_LENGTH} characters")
    if not _PREFIX.fullmatch(value):
        raise InvalidArgument(field, f"cannot start a host ({_HOST_SPELLING}): {value[:100]!r}")
    return value or None


def cursor(token: str, *, pattern: bool = False) -> str | None:
    """The host (or pattern) a page token stands for; None for the first page."""
    if not token:
        return None
    if not (is_host_pattern(token) if pattern else is_host(token)):
        raise InvalidArgument("page_token", "is not a token from a previous response")
    return token


def policy_concurrency(request: pb.SetHostPolicyRequest) -> int | None:
    if not request.HasField("max_concurrency"):
        return None
    if not 1 <= request.max_concurrency <= MAX_POLICY_CONCURRENCY:
        raise InvalidArgument("max_concurrency", f"must be between 1 and {MAX_POLICY_CONCURRENCY}")
    return request.max_concurrency


def policy_delay_ms(request: pb.SetHostPolicyRequest) -> int | None:
    if not request.HasField("delay"):
        return None
    seconds = convert.optional_seconds(request.delay, True, "delay", default=0.0, maximum=MAX_POLICY_DELAY_SECONDS)
    return round(seconds * 1000)


def pause_seconds(request: pb.PauseHostRequest) -> float | None:
    """How long to pause; None: until resumed."""
    if not request.HasField("duration"):
        return None
    seconds = convert.seconds(request.duration)
    if not 0 < seconds <= MAX_PAUSE_SECONDS:
        raise InvalidArgument(
            "duration", f"must be more than 0 and at most {MAX_PAUSE_SECONDS:g} seconds (unset: until resumed)"
        )
    return seconds


def _duration_ms(ms: int) -> duration_pb2.Duration:
    return convert.duration(ms / 1000)


def host_message(row: HostRow, defaults: Politeness) -> pb.Host:
    """A host with its limits in force: the policy's, else ``defaults``."""
    obey = defaults.obey_robots if row.obey_robots is None else row.obey_robots
    delay_ms = round(defaults.host_delay_seconds * 1000) if row.delay_ms is None else row.delay_ms
    # A Crawl-delay and the adaptive delay raise the delay, never lower it (as crawlfleet_claim does).
    if obey and row.robots_delay_ms is not None:
        delay_ms = max(delay_ms, row.robots_delay_ms)
    if row.adaptive_delay_ms is not None:
        delay_ms = max(delay_ms, row.adaptive_delay_ms)
    concurrency = defaults.host_concurrency if row.max_concurrency is None else row.max_concurrency
    return pb.Host(
        host=row.host,
        in_flight=row.in_flight,
        queued=row.queued,
        queued_capped=row.queued_capped,
        max_concurrency=1 if row.probing else concurrency,
        delay=_duration_ms(delay_ms),
        obey_robots=obey,
        policy_pattern=row.policy_pattern or "",
        policy_crawl_ids=row.policy_crawls,
        ready_at=convert.timestamp(row.ready_at),
        paused=row.paused,
        paused_until=convert.timestamp(row.paused_until),
        pause_reason=row.pause_reason or "",
        probing=row.probing,
        error_streak=row.error_streak,
        recent_failures=pb.HostFailures(
            window_started_at=convert.timestamp(row.window_started_at),
            http_429=row.window_429,
            http_5xx=row.window_5xx,
            errors=row.window_errors,
        ),
        robots=pb.HostRobots(
            state=row.robots_state,
            fetched_at=convert.timestamp(row.robots_fetched_at),
            expires_at=convert.timestamp(row.robots_expires_at),
            crawl_delay=None if row.robots_delay_ms is None else _duration_ms(row.robots_delay_ms),
        ),
        leases_started=row.leases_started,
        last_lease_at=convert.timestamp(row.last_lease_at),
        saturated=row.saturated,
        adaptive_delay=None if row.adaptive_delay_ms is None else _duration_ms(row.adaptive_delay_ms),
    )


def policy_message(row: HostPolicyRow) -> pb.HostPolicy:
    """A policy as stored: unset limits take the fleet defaults."""
    return pb.HostPolicy(
        pattern=row.pattern,
        max_concurrency=row.max_concurrency,
        delay=None if row.delay_ms is None else _duration_ms(row.delay_ms),
        obey_robots=row.obey_robots,
        note=row.note,
        updated_at=convert.timestamp(row.updated_at),
    )
