"""Rows of the operator side of the queue: jobs and their attempts, results, thumbnails,
workers, counts and health, and what requeue and purge report.

Each type's fields are, in order, the columns of the query it comes from (statements.py says
which); a test checks them against the SQL.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple


class JobSummary(NamedTuple):
    """A job as listed (job_list_filtered): everything but its result."""

    id: int
    kind: str
    state: str
    spec: bytes
    target_url: str | None
    attempt: int
    max_attempts: int
    created_at: dt.datetime
    run_at: dt.datetime
    leased_at: dt.datetime | None
    lease_expires_at: dt.datetime | None
    leased_by: str | None
    finished_at: dt.datetime | None
    last_error: str | None
    cancel_requested: bool


class JobDetail(NamedTuple):
    """One job (job_get): the columns of JobSummary, then its result (succeeded jobs only)."""

    id: int
    kind: str
    state: str
    spec: bytes
    target_url: str | None
    attempt: int
    max_attempts: int
    created_at: dt.datetime
    run_at: dt.datetime
    leased_at: dt.datetime | None
    lease_expires_at: dt.datetime | None
    leased_by: str | None
    finished_at: dt.datetime | None
    last_error: str | None
    cancel_requested: bool
    result: bytes | None


class Attempt(NamedTuple):
    """One attempt at a job; finished_at is None while it runs."""

    attempt: int
    worker_id: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    outcome: str
    error_type: str | None
    error_message: str | None


class JobHistory(NamedTuple):
    """A job with its attempts, oldest first."""

    job: JobDetail
    attempts: list[Attempt]


class CancelOutcome(NamedTuple):
    """The state of a job after a cancel request; finished_notified is the statement's NOTIFY to
    WatchJobs streams (no value)."""

    id: int
    state: str
    finished_notified: None


class StoredThumbnail(NamedTuple):
    sha256: str
    format: str
    width: int
    height: int
    data: bytes


class JobResultRow(NamedTuple):
    """The result of a succeeded job, for export; window_rows: rows the page's count limit allowed
    (more than the page holds when the byte budget cut it)."""

    id: int
    kind: str
    target_url: str | None
    finished_at: dt.datetime
    result: bytes
    spec: bytes
    window_rows: int


class WorkerRow(NamedTuple):
    """A worker as recorded from its Lease calls, with the leases it holds now."""

    id: str
    host: str
    version: str
    kinds: list[str]
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime
    in_flight: int
    slots: int  # as last reported; 0: not reported


class KindStateCount(NamedTuple):
    """How many jobs of a kind are in a state."""

    kind: str
    state: str
    jobs: int


class QueueHealth(NamedTuple):
    """Due jobs and the oldest one's run_at, leases about to run out and run out longer than a grace
    ago (stuck: the reaper should have ended them), and the database clock these were measured against."""

    due: int
    oldest_due_run_at: dt.datetime | None
    expiring_soon: int
    expired: int
    now: dt.datetime


class OldestDue(NamedTuple):
    """The oldest due job's run_at (None: none due) and the database clock."""

    oldest_due_run_at: dt.datetime | None
    now: dt.datetime


class RequeuedJob(NamedTuple):
    """A dead job back in the queue. notified is the statement's NOTIFY (no value); hosts_woken
    counts the hosts made ready for the requeued jobs."""

    id: int
    notified: None
    hosts_woken: int | None


class PurgedJobs(NamedTuple):
    """Jobs deleted, and the images their pages referred to (deleted if nothing else does)."""

    deleted_jobs: int
    image_candidates: list[str] | None
    # Parallel: each terminal state with jobs deleted, and how many.
    deleted_states: list[str]
    deleted_counts: list[int]


class DeletedImage(NamedTuple):
    sha256: str


class PurgeCounts(NamedTuple):
    """What a purge deleted: jobs (in all and by state) and images no page refers to any more."""

    deleted_jobs: int
    deleted_images: int
    by_state: dict[str, int]


class PurgeLock(NamedTuple):
    locked: bool


class ActivityMinute(NamedTuple):
    """Attempts that ended in one minute (queue_activity_by_minute), and their jobs' waits for the
    lease (None when none of them was its job's latest attempt)."""

    minute: dt.datetime
    succeeded: int
    failed: int
    expired: int
    wait_avg_ms: float | None
    wait_max_ms: float | None
