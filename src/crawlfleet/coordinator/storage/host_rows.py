"""Rows of the host queries (hosts.sql): hosts as operators see them, host policies, and the
figures of the host gauges.

Each type's fields are, in order, the columns of the query it comes from (statements.py says
which); a test checks them against the SQL. Limits left NULL take the fleet defaults, which the
coordinator's flags set (coordinator/politeness.py).
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple


class HostRow(NamedTuple):
    """A host (host_get, host_list): its policy in force as copied into the hosts table, its place
    in line, backoff and robots.txt, with its leases in flight and queued jobs counted now.
    paused_until and ready_at are None for 'infinity' (paused until resumed); paused says whether
    a pause is in force, probing that one ended and no lease has succeeded since."""

    host: str
    policy_pattern: str | None
    max_concurrency: int | None
    delay_ms: int | None
    obey_robots: bool | None
    ready_at: dt.datetime | None
    paused: bool
    paused_until: dt.datetime | None
    pause_reason: str | None
    probing: bool
    error_streak: int
    window_started_at: dt.datetime | None
    window_429: int
    window_5xx: int
    window_errors: int
    robots_state: str
    robots_fetched_at: dt.datetime | None
    robots_expires_at: dt.datetime | None
    robots_delay_ms: int | None
    adaptive_delay_ms: int | None
    leases_started: int
    last_lease_at: dt.datetime | None
    saturated: bool
    in_flight: int
    queued: int
    queued_capped: bool
    # The running crawls whose policies are the one in force (migration 0013); empty: none.
    policy_crawls: list[int]


class HostPolicyRow(NamedTuple):
    """A host policy; None limits take the fleet defaults."""

    pattern: str
    max_concurrency: int | None
    delay_ms: int | None
    obey_robots: bool | None
    note: str
    updated_at: dt.datetime


class PausedHost(NamedTuple):
    """The host a pause reached (host_pause)."""

    host: str


class ResumedHost(NamedTuple):
    """The host a resume reached (host_resume); notified is the statement's NOTIFY (no value)."""

    host: str
    notified: None


class PolicyApplied(NamedTuple):
    """How many hosts a policy change was copied into; notified is the statement's NOTIFY."""

    hosts: int
    notified: None


class HostCount(NamedTuple):
    hosts: int


class HostGauges(NamedTuple):
    """Hosts with queued jobs, and of them those at their concurrency limit when last claimed."""

    queued: int
    saturated: int


class PausedByReason(NamedTuple):
    """Hosts paused now whose pause reason starts with `reason` (its text before the first ':')."""

    reason: str
    hosts: int


class PolicyChange(NamedTuple):
    """A policy set or removed, and how many known hosts it now governs (set) or governed (removed)."""

    policy: HostPolicyRow
    hosts: int
