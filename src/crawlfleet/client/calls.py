"""Requests and the bookkeeping between calls, shared by the blocking and the asyncio client.

The two clients differ only in how they make a call; what goes into each request, how a batch
error is located, and when a multi-call operation is done is decided here, once.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Sequence

from crawlfleet.client.errors import InvalidArgument
from crawlfleet.client.models import (
    EnqueuedJob,
    HostPage,
    HostPolicyChange,
    HostPolicyPage,
    JobPage,
    ResultPage,
    state_values,
)
from crawlfleet.client.specs import JobFilter, JobLike, Seconds, duration, job_spec, timestamp
from crawlfleet.common.states import JobState
from crawlfleet.v1 import admin_pb2, job_queue_pb2, jobs_pb2

DEFAULT_ENQUEUE_BATCH = 1000
MAX_ENQUEUE_BATCH = 10_000  # the coordinator's limit per Enqueue call
DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 1000  # ListJobs, ListResults, ListHosts and ListHostPolicies
DEFAULT_REQUEUE_BATCH = 1000
MAX_REQUEUE_BATCH = 10_000
DEFAULT_PURGE_BATCH = 10_000
MAX_PURGE_BATCH = 100_000
_JOB_INDEX = re.compile(r"^jobs\[(\d+)\]")


def check_size(name: str, value: int, maximum: int) -> int:
    """``value`` if it is within ``1..maximum``; ``ValueError`` otherwise."""
    if not 1 <= value <= maximum:
        raise ValueError(f"{name} must be between 1 and {maximum}, not {value}")
    return value


def enqueue_batches(jobs: Iterable[JobLike], batch_size: int) -> Iterator[tuple[int, job_queue_pb2.EnqueueRequest]]:
    """Each Enqueue request of ``jobs`` with the position of its first job; reads ``jobs`` lazily,
    so a generator of a million URLs is never held in memory at once."""
    check_size("batch_size", batch_size, MAX_ENQUEUE_BATCH)
    offset = 0
    batch: list[jobs_pb2.JobSpec] = []
    for job in jobs:
        batch.append(job_spec(job))
        if len(batch) == batch_size:
            yield offset, job_queue_pb2.EnqueueRequest(jobs=batch)
            offset += len(batch)
            batch = []
    if batch:
        yield offset, job_queue_pb2.EnqueueRequest(jobs=batch)


def enqueued(response: job_queue_pb2.EnqueueResponse) -> list[EnqueuedJob]:
    return [EnqueuedJob(job.id, job.created, job.existing_spec_differs) for job in response.jobs]


def locate(error: InvalidArgument, offset: int) -> None:
    """Sets the caller's index of the offending job on the error of a batch starting at ``offset``."""
    match = _JOB_INDEX.match(error.field or "")
    if match:
        error.job_index = offset + int(match.group(1))


def list_jobs_request(where: JobFilter | None, page_size: int, page_token: str) -> admin_pb2.ListJobsRequest:
    check_size("page_size", page_size, MAX_PAGE_SIZE)
    flt = where.to_proto() if where is not None else admin_pb2.JobFilter()
    return admin_pb2.ListJobsRequest(filter=flt, page_size=page_size, page_token=page_token)


def job_page(response: admin_pb2.ListJobsResponse) -> JobPage:
    return JobPage(list(response.jobs), response.next_page_token)


def list_results_request(
    kind: str | None,
    page_size: int,
    page_token: str,
    crawl_id: int | None = None,
    *,
    changed_since: dt.datetime | None = None,
    url_prefix: str | None = None,
) -> admin_pb2.ListResultsRequest:
    check_size("page_size", page_size, MAX_PAGE_SIZE)
    if crawl_id is not None and crawl_id < 1:
        raise ValueError(f"crawl_id must be a positive crawl id, not {crawl_id}")
    request = admin_pb2.ListResultsRequest(
        page_size=page_size, page_token=page_token, kind=kind or "", crawl_id=crawl_id or 0, url_prefix=url_prefix or ""
    )
    if changed_since is not None:
        request.changed_since.CopyFrom(timestamp(changed_since))
    return request


def result_page(response: admin_pb2.ListResultsResponse) -> ResultPage:
    return ResultPage(list(response.results), response.next_page_token)


class Paging:
    """Where an iteration over pages stands: the next page's size and token, and whether to go on."""

    def __init__(self, page_size: int, limit: int | None) -> None:
        check_size("page_size", page_size, MAX_PAGE_SIZE)
        if limit is not None and limit < 0:
            raise ValueError(f"limit must not be negative, not {limit}")
        self.limit = limit
        self.token = ""
        self.yielded = 0
        self._page_size = page_size
        self._done = limit == 0

    @property
    def done(self) -> bool:
        return self._done

    def page_size(self) -> int:
        """The size of the next page: no more than ``limit`` still needs."""
        return self._page_size if self.limit is None else min(self._page_size, self.limit - self.yielded)

    def take(self, items: Sequence[object], next_token: str) -> int:
        """How many of a page's ``items`` to hand out; records the token of the page after it."""
        count = len(items) if self.limit is None else min(len(items), self.limit - self.yielded)
        self.yielded += count
        self.token = next_token
        self._done = not next_token or (self.limit is not None and self.yielded >= self.limit)
        return count


def requeue_id_requests(job_ids: Iterable[int]) -> Iterator[admin_pb2.RequeueDeadJobsRequest]:
    """Requeue requests of ``job_ids``, at most a batch of ids in each."""
    ids = list(dict.fromkeys(job_ids))
    for start in range(0, len(ids), MAX_REQUEUE_BATCH):
        yield admin_pb2.RequeueDeadJobsRequest(job_ids=ids[start : start + MAX_REQUEUE_BATCH])


class RequeueByFilter:
    """Requeuing every dead job that matches a filter, a batch per call, until a batch comes back short.

    A job requeued here may die again while the loop runs; it is requeued once only, and seeing it
    again ends the loop (otherwise a quickly failing job would keep it going forever).
    """

    def __init__(self, where: JobFilter, batch_size: int) -> None:
        self.batch_size = check_size("batch_size", batch_size, MAX_REQUEUE_BATCH)
        self.request = admin_pb2.RequeueDeadJobsRequest(filter=where.to_proto(), limit=batch_size)
        self.requeued: list[int] = []
        self._seen: set[int] = set()

    def absorb(self, response: admin_pb2.RequeueDeadJobsResponse) -> bool:
        """Records a batch; True when another call may requeue more."""
        batch = list(response.requeued_job_ids)
        fresh = [i for i in batch if i not in self._seen]
        self._seen.update(batch)
        self.requeued += fresh
        return len(batch) == self.batch_size and len(fresh) == len(batch)


def purge_request(older_than: Seconds, states: Sequence[JobState | str], batch_size: int) -> admin_pb2.PurgeJobsRequest:
    check_size("batch_size", batch_size, MAX_PURGE_BATCH)
    return admin_pb2.PurgeJobsRequest(
        finished_before=duration(older_than), states=state_values(states), limit=batch_size
    )


def health_request(
    expiring_within: Seconds | None, workers_seen_within: Seconds | None
) -> admin_pb2.GetQueueHealthRequest:
    request = admin_pb2.GetQueueHealthRequest()
    if expiring_within is not None:
        request.expiring_within.CopyFrom(duration(expiring_within))
    if workers_seen_within is not None:
        request.workers_seen_within.CopyFrom(duration(workers_seen_within))
    return request


def workers_request(seen_within: Seconds | None) -> admin_pb2.ListWorkersRequest:
    request = admin_pb2.ListWorkersRequest()
    if seen_within is not None:
        request.seen_within.CopyFrom(duration(seen_within))
    return request


def list_hosts_request(
    paused_only: bool, queued_only: bool, prefix: str | None, page_size: int, page_token: str
) -> admin_pb2.ListHostsRequest:
    check_size("page_size", page_size, MAX_PAGE_SIZE)
    return admin_pb2.ListHostsRequest(
        paused_only=paused_only,
        queued_only=queued_only,
        host_prefix=prefix or "",
        page_size=page_size,
        page_token=page_token,
    )


def host_page(response: admin_pb2.ListHostsResponse) -> HostPage:
    return HostPage(list(response.hosts), response.next_page_token)


def list_host_policies_request(page_size: int, page_token: str) -> admin_pb2.ListHostPoliciesRequest:
    check_size("page_size", page_size, MAX_PAGE_SIZE)
    return admin_pb2.ListHostPoliciesRequest(page_size=page_size, page_token=page_token)


def host_policy_page(response: admin_pb2.ListHostPoliciesResponse) -> HostPolicyPage:
    return HostPolicyPage(list(response.policies), response.next_page_token)


def set_host_policy_request(
    pattern: str, max_concurrency: int | None, delay: Seconds | None, obey_robots: bool | None, note: str
) -> admin_pb2.SetHostPolicyRequest:
    """A policy request; limits left None take the fleet defaults."""
    request = admin_pb2.SetHostPolicyRequest(
        pattern=pattern, max_concurrency=max_concurrency, obey_robots=obey_robots, note=note
    )
    if delay is not None:
        request.delay.CopyFrom(duration(delay))
    return request


def set_policy_change(response: admin_pb2.SetHostPolicyResponse) -> HostPolicyChange:
    return HostPolicyChange(response.policy, response.hosts_governed)


def cleared_policy_change(response: admin_pb2.ClearHostPolicyResponse) -> HostPolicyChange:
    return HostPolicyChange(response.policy, response.hosts_released)


def pause_host_request(host: str, pause_for: Seconds | None, reason: str) -> admin_pb2.PauseHostRequest:
    """A pause of ``pause_for`` (None: until resumed)."""
    request = admin_pb2.PauseHostRequest(host=host, reason=reason)
    if pause_for is not None:
        request.duration.CopyFrom(duration(pause_for))
    return request
