"""Rows of the admin queries to messages, and request filters to query values."""

from __future__ import annotations

from collections.abc import Mapping

from crawlfleet.common.states import STATE_NAMES, TERMINAL_STATE_NAMES, JobState
from crawlfleet.coordinator.api import convert
from crawlfleet.coordinator.errors import InvalidArgument
from crawlfleet.coordinator.storage.admin import JobFilterValues
from crawlfleet.coordinator.storage.admin_rows import Attempt, JobDetail, JobSummary, WorkerRow
from crawlfleet.v1 import admin_pb2 as pb
from crawlfleet.v1 import jobs_pb2

MAX_FILTER_TEXT = 2048
# Page tokens are job ids, which are bigints.
_MAX_JOB_ID = 2**63 - 1


def job_state(name: str) -> jobs_pb2.JobState.ValueType:
    """The message value of a database state."""
    return JobState(name).to_proto()


def state_name(value: int, field: str) -> str:
    """The database state of a request's state; ``InvalidArgument`` naming ``field`` otherwise."""
    try:
        return JobState.from_proto(value).value
    except ValueError:
        raise InvalidArgument(field, f"is not a job state: {value}") from None


def terminal_states(values: list[int], field: str) -> tuple[str, ...]:
    names = tuple(state_name(v, f"{field}[{i}]") for i, v in enumerate(values)) or TERMINAL_STATE_NAMES
    for i, name in enumerate(names):
        if not JobState(name).is_terminal:
            raise InvalidArgument(
                f"{field}[{i}]", "only finished jobs (succeeded, dead, cancelled, skipped) can be purged"
            )
    return names


def job_filter(flt: pb.JobFilter, field: str) -> JobFilterValues:
    for name in ("kind", "url_prefix", "error_type"):
        convert.bounded_text(getattr(flt, name), f"{field}.{name}", limit=MAX_FILTER_TEXT)
    return JobFilterValues(
        states=tuple(state_name(v, f"{field}.states[{i}]") for i, v in enumerate(flt.states)),
        kind=flt.kind or None,
        url_prefix=flt.url_prefix or None,
        created_after=flt.created_after.ToDatetime(tzinfo=convert.UTC) if flt.HasField("created_after") else None,
        created_before=flt.created_before.ToDatetime(tzinfo=convert.UTC) if flt.HasField("created_before") else None,
        error_type=flt.error_type or None,
    )


def job_message(row: JobSummary | JobDetail) -> jobs_pb2.Job:
    """A job without attempts or result."""
    return jobs_pb2.Job(
        id=row.id,
        kind=row.kind,
        state=job_state(row.state),
        spec=jobs_pb2.JobSpec.FromString(row.spec),
        target_url=row.target_url or "",
        attempt=row.attempt,
        max_attempts=row.max_attempts,
        created_at=convert.timestamp(row.created_at),
        run_at=convert.timestamp(row.run_at),
        leased_at=convert.timestamp(row.leased_at),
        lease_expires_at=convert.timestamp(row.lease_expires_at),
        leased_by=row.leased_by or "",
        finished_at=convert.timestamp(row.finished_at),
        last_error=row.last_error or "",
        cancel_requested=row.cancel_requested,
    )


def attempt_message(row: Attempt) -> jobs_pb2.Attempt:
    return jobs_pb2.Attempt(
        number=row.attempt,
        worker_id=row.worker_id,
        started_at=convert.timestamp(row.started_at),
        finished_at=convert.timestamp(row.finished_at),
        outcome=row.outcome,
        error_type=row.error_type or "",
        error_message=row.error_message or "",
    )


def worker_status(row: WorkerRow) -> pb.WorkerStatus:
    return pb.WorkerStatus(
        worker_id=row.id,
        host=row.host,
        version=row.version,
        kinds=list(row.kinds),
        first_seen_at=convert.timestamp(row.first_seen_at),
        last_seen_at=convert.timestamp(row.last_seen_at),
        in_flight=row.in_flight,
        slots=row.slots,
    )


def state_counts(counts: Mapping[str, int]) -> list[pb.StateCount]:
    """Every state, zeros included."""
    return [pb.StateCount(state=job_state(name), count=counts.get(name, 0)) for name in STATE_NAMES]


def page_size(value: int, *, default: int, maximum: int) -> int:
    size = value or default
    if not 1 <= size <= maximum:
        raise InvalidArgument("page_size", f"must be between 1 and {maximum}")
    return size


def page_cursor(token: str) -> int | None:
    """The id a page token stands for (None for the first page)."""
    if not token:
        return None
    # isdigit() alone takes "²" and other Unicode digits that int() refuses.
    if not (token.isascii() and token.isdigit()) or int(token) > _MAX_JOB_ID:
        raise InvalidArgument("page_token", "is not a token from a previous response")
    return int(token)
