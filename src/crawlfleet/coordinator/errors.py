"""Domain errors of the coordinator, typed by what the caller should do.

The servicers map them to gRPC status codes in one place (coordinator/api/status.py); asyncpg
errors are translated to these at the storage boundary (coordinator/storage/translate.py).
"""

from __future__ import annotations

from collections.abc import Iterable


class CoordinatorError(Exception):
    """Base of every error the coordinator reports to a caller."""

    reason = "UNSPECIFIED"

    def __init__(self, message: str, *, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = metadata or {}


class InvalidArgument(CoordinatorError):
    """A request field is invalid; `field` is its path, e.g. `jobs[3].scrape.url`."""

    reason = "INVALID_FIELD"

    def __init__(self, field: str, message: str, *, job_id: int | None = None) -> None:
        metadata = {"field": field}
        if job_id is not None:  # the field belongs to this job: a batch's other jobs are fine
            metadata["job_id"] = str(job_id)
        super().__init__(f"{field}: {message}", metadata=metadata)
        self.field = field
        self.field_job_id = job_id  # the job the field belongs to, if any

    def within(self, path: str) -> InvalidArgument:
        """The same error named from further out: its field is `path` + "." + this one's."""
        return InvalidArgument(
            f"{path}.{self.field}", self.message.removeprefix(f"{self.field}: "), job_id=self.field_job_id
        )


class WrongResultKind(InvalidArgument):
    """A job was completed with a result of another kind (a scrape result on a noop job)."""

    def __init__(self, job_id: int, field: str = "result") -> None:
        super().__init__(field, f"job {job_id} is not a scrape job; it takes no scrape result", job_id=job_id)
        self.job_id = job_id


class InternalError(CoordinatorError):
    """Something failed that the caller cannot fix; the details are in the coordinator's log only."""

    reason = "INTERNAL"

    def __init__(self) -> None:
        super().__init__("internal error; the coordinator logged the details")


class LeaseLost(CoordinatorError):
    """The lease tokens presented are stale; nothing was changed."""

    reason = "LEASE_LOST"

    def __init__(self, job_ids: Iterable[int]) -> None:
        ids = sorted(job_ids)
        super().__init__(
            f"lease lost for job(s) {', '.join(map(str, ids))}: the lease expired or the job moved on",
            metadata={"job_ids": ",".join(map(str, ids))},
        )
        self.job_ids = ids


class NotFound(CoordinatorError):
    """The thing asked for does not exist."""

    reason = "NOT_FOUND"


class JobNotFound(NotFound):
    reason = "JOB_NOT_FOUND"

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} does not exist", metadata={"job_id": str(job_id)})


class HostNotFound(NotFound):
    """No jobs were ever enqueued for the host, so the fleet does not know it."""

    reason = "HOST_NOT_FOUND"

    def __init__(self, host: str) -> None:
        super().__init__(
            f"no host {host!r}: the fleet knows a host once jobs were enqueued for it", metadata={"host": host}
        )


class HostPolicyNotFound(NotFound):
    reason = "HOST_POLICY_NOT_FOUND"

    def __init__(self, pattern: str) -> None:
        super().__init__(f"no host policy with the pattern {pattern!r}", metadata={"pattern": pattern})


class CrawlNotFound(NotFound):
    reason = "CRAWL_NOT_FOUND"

    def __init__(self, crawl_id: int) -> None:
        super().__init__(f"crawl {crawl_id} does not exist", metadata={"crawl_id": str(crawl_id)})


class WrongState(CoordinatorError):
    """The job is not in a state that allows the operation."""

    reason = "WRONG_STATE"


class ResultMismatch(CoordinatorError):
    """A replayed Complete carried a result other than the one stored."""

    reason = "RESULT_MISMATCH"


class ImageNotStored(CoordinatorError):
    """A result referred to stored images (ImageResult.stored) that are not stored (any more: a
    purge removed them): nothing changed, the worker reports the result again with the thumbnails."""

    reason = "IMAGE_NOT_STORED"

    def __init__(self, job_id: int, sha256s: Iterable[str]) -> None:
        hashes = sorted(set(sha256s))
        super().__init__(
            f"job {job_id}: {len(hashes)} referenced image(s) not stored; report them with their thumbnails",
            metadata={"job_id": str(job_id), "sha256s": ",".join(hashes)},
        )
        self.job_id = job_id
        self.sha256s = hashes


class Draining(CoordinatorError):
    reason = "DRAINING"

    def __init__(self) -> None:
        super().__init__("the coordinator is shutting down; retry on another coordinator")


class ResourceExhausted(CoordinatorError):
    """A limit of the coordinator is reached; `limit` names it. Retry later or elsewhere."""

    reason = "RESOURCE_EXHAUSTED"

    def __init__(self, limit: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, metadata={"limit": limit})
        self.limit = limit
        # Sent as RetryInfo: how long the caller should wait before trying again.
        self.retry_after = retry_after


class DatabaseUnavailable(CoordinatorError):
    """The database cannot serve the call now (unreachable, restarting, or busy): retry."""

    reason = "DATABASE_UNAVAILABLE"


class DatabaseBusy(DatabaseUnavailable):
    """A statement ran into the lock or statement timeout (e.g. a row another session holds): retry."""

    reason = "DATABASE_BUSY"


class Unauthenticated(CoordinatorError):
    """The call carried no valid bearer token."""

    reason = "UNAUTHENTICATED"


class PermissionDenied(CoordinatorError):
    """The caller's token is valid, but its role may not call the method."""

    reason = "PERMISSION_DENIED"
