"""Rows of the worker and producer side of the queue: what Enqueue, Lease, Heartbeat, Complete,
Fail, the reaper and WatchJobs hand to their queries and get back (and the migration runner's one
row). A `finished_notified` column is the statement's NOTIFY to WatchJobs streams (no value).

Each type's fields are, in order, the columns of the query it feeds or comes from (statements.py
says which); a test checks them against the SQL.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import NamedTuple


class NewJob(NamedTuple):
    """One job to insert (job_enqueue_many); a validated JobSpec."""

    kind: str
    priority: int
    spec: bytes
    target_url: str | None
    dedupe_key: str | None
    run_at: dt.datetime | None
    max_attempts: int
    retry_initial_ms: int
    retry_multiplier: float
    retry_max_ms: int
    host: str | None


class EnqueueOutcome(NamedTuple):
    """What job_enqueue_many answers for a batch, one item per input row in order: the id of the
    job it created or found live (None when the live twin committed after the statement's
    snapshot), whether it created it, and the live twin's spec when it differs from the one given."""

    ids: list[int | None]
    created: list[bool]
    live_specs: list[bytes | None]
    notified: int
    hosts_woken: int | None


class EnqueuedJob(NamedTuple):
    """What Enqueue answers per job: its id, whether it is new (False: a live duplicate), and for a
    duplicate the live job's spec when it is not byte for byte the one given."""

    id: int
    created: bool
    live_spec: bytes | None = None


class LiveJob(NamedTuple):
    """The live (queued or leased) job holding a dedupe key."""

    dedupe_key: str
    id: int


class LeasedJob(NamedTuple):
    """A job just claimed by a worker."""

    id: int
    kind: str
    spec: bytes
    attempt: int
    max_attempts: int
    lease_token: uuid.UUID
    lease_expires_at: dt.datetime
    host: str | None = None
    fetch_robots: bool = False
    robots_version: dt.datetime | None = None


class LatencySample(NamedTuple):
    """A completed job's server response time, for its host's adaptive delay."""

    job_id: int
    latency_ms: float


class NextReady(NamedTuple):
    """When the next host with queued work may be leased from (None: no host waits)."""

    ready_at: dt.datetime | None


class LeaseRef(NamedTuple):
    """A lease a worker holds, as Heartbeat presents it."""

    job_id: int
    lease_token: uuid.UUID


class LeaseExtension(NamedTuple):
    """Heartbeat answer for one lease still held under its token: 'leased' with the new expiry
    (extended), 'leased' without one (the row was busy: not extended, not lost), 'cancelled',
    or 'succeeded' (its Complete committed first)."""

    id: int
    state: str
    lease_expires_at: dt.datetime | None
    finished_notified: None


class Completion(NamedTuple):
    """A job a worker completes under its lease, with the result bytes the job keeps."""

    job_id: int
    lease_token: uuid.UUID
    result: bytes


class CompletedJob(NamedTuple):
    """A job the statement completed; finished_notified counts its NOTIFY (0 or 1 per statement)."""

    id: int
    finished_notified: int
    hosts_notified: int
    crawl_id: int | None
    depth: int | None


class JobFencing(NamedTuple):
    """What tells a replayed Complete from a lost lease."""

    id: int
    state: str
    lease_token: uuid.UUID | None
    lease_principal: str | None
    result: bytes | None


class FailOutcome(NamedTuple):
    """Where a failed or released job went: 'queued' (again at run_at) or 'dead'.
    notified is the statement's NOTIFY (no value)."""

    id: int
    state: str
    run_at: dt.datetime
    notified: None
    finished_notified: None


class ReapedJob(NamedTuple):
    """A job whose lease ran out, and its state now ('queued', 'dead' or 'cancelled').
    notified is the statement's NOTIFY (no value)."""

    id: int
    state: str
    notified: None
    finished_notified: None


class RobotsReported(NamedTuple):
    """What host_robots_report did: nothing unless lease_held; else the host's robots.txt now (state
    None: the host has no row). notified is the statement's NOTIFY (no value)."""

    lease_held: bool
    state: str | None
    version: dt.datetime | None
    expires_at: dt.datetime | None
    notified: None


class HostRobots(NamedTuple):
    """A host's robots.txt as the fleet holds it: state, rules (with 'rules'), version, due again at."""

    state: str
    body: bytes | None
    version: dt.datetime | None
    expires_at: dt.datetime | None


class WatchedJob(NamedTuple):
    """A watched job that is terminal or, with state None, an id that matches no job."""

    id: int
    state: str | None
    attempt: int | None
    finished_at: dt.datetime | None
    last_error: str | None


class UnfinishedIds(NamedTuple):
    """Ids of queued and leased jobs, up to the limit asked for."""

    ids: list[int] | None


class AppliedMigration(NamedTuple):
    """A migration recorded as applied to the database."""

    version: int
    name: str
    checksum: str
