"""crawlfleet.v1.Admin: the operator surface of the queue. Its host calls are hosts.py's."""

from __future__ import annotations

import datetime as dt
import re

import grpc

from crawlfleet.common.states import STATE_NAMES
from crawlfleet.coordinator.api import convert
from crawlfleet.coordinator.api.admin_convert import (
    MAX_FILTER_TEXT,
    attempt_message,
    job_filter,
    job_message,
    job_state,
    page_cursor,
    page_size,
    state_counts,
    terminal_states,
    worker_status,
)
from crawlfleet.coordinator.api.hosts import HostsServicer
from crawlfleet.coordinator.api.status import handles_errors
from crawlfleet.coordinator.errors import InvalidArgument, NotFound
from crawlfleet.coordinator.metrics import CoordinatorMetrics
from crawlfleet.coordinator.politeness import Politeness
from crawlfleet.coordinator.security.principal import visible_owner
from crawlfleet.coordinator.storage.admin import AdminQueue, JobFilterValues
from crawlfleet.coordinator.storage.hosts import HostAdmin
from crawlfleet.coordinator.wakeup import LeaseWakeup
from crawlfleet.v1 import admin_pb2 as pb
from crawlfleet.v1 import jobs_pb2

Ctx = grpc.aio.ServicerContext
_SHA256 = re.compile(r"[0-9a-f]{64}")  # fullmatch: "$" matches before a trailing newline
MAX_PAGE_SIZE = 1000
# A ListResults page stops before its results pass this size (one result always goes): far below
# what clients accept (the client library takes 64 MiB, gRPC's own default is 4 MiB) and below
# the server's send limit, so a page of large results never fails for its size.
RESULT_PAGE_BYTES = 3 * 1024 * 1024
MAX_REQUEUE_LIMIT = 10_000
MAX_PURGE_LIMIT = 100_000
DEFAULT_EXPIRING_WITHIN = 10.0
DEFAULT_WORKERS_WINDOW = 300.0
# Expired leases count as stuck (health) once this many reaper intervals have passed.
STUCK_LEASE_REAP_INTERVALS = 2
# Upper bounds of the duration fields: beyond them an answer means nothing (or a date overflows).
MAX_EXPIRING_WITHIN = 24 * 3600.0
MAX_WORKERS_WINDOW = 365 * 24 * 3600.0
MAX_FINISHED_BEFORE = 100 * 365 * 24 * 3600.0
DEFAULT_ACTIVITY_WINDOW = 3600.0
MAX_ACTIVITY_WINDOW = 24 * 3600.0


class AdminServicer(HostsServicer):
    def __init__(
        self,
        admin: AdminQueue,
        hosts: HostAdmin,
        wakeup: LeaseWakeup,
        *,
        reap_interval_seconds: float,
        politeness: Politeness,
        metrics: CoordinatorMetrics,
    ) -> None:
        super().__init__(hosts, politeness)
        self._admin = admin
        self._metrics = metrics
        self._wakeup = wakeup
        # An expired lease is stuck only once the reaper had two chances to end it.
        self._stuck_after = STUCK_LEASE_REAP_INTERVALS * reap_interval_seconds

    @handles_errors
    async def GetJob(self, request: pb.GetJobRequest, context: Ctx) -> pb.GetJobResponse:  # type: ignore[type-arg]
        """One job with its attempts and its result (a producer's own jobs only)."""
        history = await self._admin.get_job(convert.positive_id(request.job_id, "job_id"), owner=visible_owner())
        job = job_message(history.job)
        job.attempts.extend(attempt_message(a) for a in history.attempts)
        if history.job.result is not None:
            job.result.ParseFromString(history.job.result)
        return pb.GetJobResponse(job=job)

    @handles_errors
    async def CancelJob(self, request: pb.CancelJobRequest, context: Ctx) -> pb.CancelJobResponse:  # type: ignore[type-arg]
        """Cancel a job; a leased one ends at its worker's next heartbeat."""
        state = await self._admin.cancel(convert.positive_id(request.job_id, "job_id"))
        return pb.CancelJobResponse(state=job_state(state))

    @handles_errors
    async def RequeueDeadJobs(
        self,
        request: pb.RequeueDeadJobsRequest,
        context: Ctx,  # type: ignore[type-arg]
    ) -> pb.RequeueDeadJobsResponse:
        """Dead jobs back to queued with a fresh attempt budget, by ids or by filter."""
        if request.job_ids and request.HasField("filter"):
            raise InvalidArgument("filter", "give job_ids or a filter, not both")
        if request.job_ids:
            ids = [convert.positive_id(j, f"job_ids[{i}]") for i, j in enumerate(request.job_ids)]
            requeued = await self._admin.requeue_dead(JobFilterValues(), job_ids=ids, limit=len(ids))
        elif request.HasField("filter"):
            limit = request.limit or 1000
            if not 1 <= limit <= MAX_REQUEUE_LIMIT:
                raise InvalidArgument("limit", f"must be between 1 and {MAX_REQUEUE_LIMIT}")
            requeued = await self._admin.requeue_dead(job_filter(request.filter, "filter"), limit=limit)
        else:
            raise InvalidArgument("job_ids", "give job ids or a filter")
        if requeued:
            self._wakeup.notify()
        return pb.RequeueDeadJobsResponse(requeued_job_ids=requeued)

    @handles_errors
    async def GetQueueStats(
        self,
        request: pb.GetQueueStatsRequest,
        context: Ctx,  # type: ignore[type-arg]
    ) -> pb.GetQueueStatsResponse:
        """Exact counts of jobs by state (every state, zeros included) and by kind and state."""
        counts = await self._admin.counts()
        totals: dict[str, int] = {}
        for (_, state), count in counts.items():
            totals[state] = totals.get(state, 0) + count
        kinds = [
            pb.KindStateCount(kind=kind, state=job_state(state), count=count)
            for (kind, state), count in sorted(counts.items(), key=lambda kv: (kv[0][0], STATE_NAMES.index(kv[0][1])))
        ]
        return pb.GetQueueStatsResponse(states=state_counts(totals), kinds=kinds)

    @handles_errors
    async def GetQueueHealth(
        self,
        request: pb.GetQueueHealthRequest,
        context: Ctx,  # type: ignore[type-arg]
    ) -> pb.GetQueueHealthResponse:
        """Depth, age of the oldest due job, leases about to expire, dead jobs, workers."""
        within = convert.optional_seconds(
            request.expiring_within,
            request.HasField("expiring_within"),
            "expiring_within",
            default=DEFAULT_EXPIRING_WITHIN,
            maximum=MAX_EXPIRING_WITHIN,
        )
        window = convert.optional_seconds(
            request.workers_seen_within,
            request.HasField("workers_seen_within"),
            "workers_seen_within",
            default=DEFAULT_WORKERS_WINDOW,
            maximum=MAX_WORKERS_WINDOW,
        )
        health = await self._admin.health(expiring_within=within, stuck_after=self._stuck_after)
        totals = await self._admin.counts_by_state()
        workers = await self._admin.workers_seen_since(health.now - dt.timedelta(seconds=window))
        oldest = (health.now - health.oldest_due_run_at).total_seconds() if health.oldest_due_run_at else 0.0
        return pb.GetQueueHealthResponse(
            states=state_counts(totals),
            due=health.due,
            oldest_due_age=convert.duration(max(0.0, oldest)),
            leases_expiring_soon=health.expiring_soon,
            leases_expired=health.expired,
            dead=totals.get("dead", 0),
            workers=[worker_status(w) for w in workers],
        )

    @handles_errors
    async def ListJobs(self, request: pb.ListJobsRequest, context: Ctx) -> pb.ListJobsResponse:  # type: ignore[type-arg]
        """Jobs matching the filter, newest first; page with next_page_token."""
        size = page_size(request.page_size, default=50, maximum=MAX_PAGE_SIZE)
        cursor = page_cursor(request.page_token)
        rows = await self._admin.list_jobs(
            job_filter(request.filter, "filter"), before_id=cursor if cursor is not None else 2**63 - 1, limit=size
        )
        next_token = str(rows[-1].id) if len(rows) == size else ""
        return pb.ListJobsResponse(jobs=[job_message(r) for r in rows], next_page_token=next_token)

    @handles_errors
    async def GetQueueActivity(
        self,
        request: pb.GetQueueActivityRequest,
        context: Ctx,  # type: ignore[type-arg]
    ) -> pb.GetQueueActivityResponse:
        """Attempts ended per minute over the window, every minute present (zeros included)."""
        window = convert.optional_seconds(
            request.window,
            request.HasField("window"),
            "window",
            default=DEFAULT_ACTIVITY_WINDOW,
            maximum=MAX_ACTIVITY_WINDOW,
        )
        if window < 60:
            raise InvalidArgument("window", "must be at least 1 minute")
        now = dt.datetime.now(dt.UTC)
        last = now.replace(second=0, microsecond=0)
        first = last - dt.timedelta(minutes=int(window // 60) - 1)
        found = {row.minute: row for row in await self._admin.activity(since=first, until=now)}
        minutes = []
        for index in range(int((last - first).total_seconds() // 60) + 1):
            start = first + dt.timedelta(minutes=index)
            minute = pb.ActivityMinute(minute=convert.timestamp(start))
            row = found.get(start)
            if row is not None:
                minute.succeeded, minute.failed, minute.expired = row.succeeded, row.failed, row.expired
                if row.wait_avg_ms is not None and row.wait_max_ms is not None:
                    minute.lease_wait_avg.CopyFrom(convert.duration(row.wait_avg_ms / 1000))
                    minute.lease_wait_max.CopyFrom(convert.duration(row.wait_max_ms / 1000))
            minutes.append(minute)
        return pb.GetQueueActivityResponse(minutes=minutes)

    @handles_errors
    async def ListWorkers(
        self,
        request: pb.ListWorkersRequest,
        context: Ctx,  # type: ignore[type-arg]
    ) -> pb.ListWorkersResponse:
        """Workers seen within the window, most recent first, with their leases in flight."""
        window = convert.optional_seconds(
            request.seen_within,
            request.HasField("seen_within"),
            "seen_within",
            default=DEFAULT_WORKERS_WINDOW,
            maximum=MAX_WORKERS_WINDOW,
        )
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=window)
        return pb.ListWorkersResponse(workers=[worker_status(w) for w in await self._admin.workers_seen_since(since)])

    @handles_errors
    async def PurgeJobs(self, request: pb.PurgeJobsRequest, context: Ctx) -> pb.PurgeJobsResponse:  # type: ignore[type-arg]
        """Delete finished jobs older than the bound, with their history, results and orphan images."""
        if not request.HasField("finished_before"):
            raise InvalidArgument("finished_before", "is required (e.g. 7 days)")
        age = convert.optional_seconds(
            request.finished_before, True, "finished_before", default=0.0, maximum=MAX_FINISHED_BEFORE
        )
        limit = request.limit or 10_000
        if not 1 <= limit <= MAX_PURGE_LIMIT:
            raise InvalidArgument("limit", f"must be between 1 and {MAX_PURGE_LIMIT}")
        states = terminal_states(list(request.states), "states")
        bound = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age)
        purged = await self._admin.purge(states=states, finished_before=bound, limit=limit)
        assert purged is not None  # it waits for its turn
        self._metrics.removed(purged, by="purge")
        return pb.PurgeJobsResponse(deleted_jobs=purged.deleted_jobs, deleted_images=purged.deleted_images)

    @handles_errors
    async def GetThumbnail(
        self,
        request: pb.GetThumbnailRequest,
        context: Ctx,  # type: ignore[type-arg]
    ) -> pb.GetThumbnailResponse:
        """A stored thumbnail with its bytes (for a producer, of an image on one of its pages)."""
        if not _SHA256.fullmatch(request.sha256):
            raise InvalidArgument("sha256", "must be 64 lower-case hex digits")
        thumb = await self._admin.thumbnail(request.sha256, owner=visible_owner())
        if thumb is None:
            raise NotFound(f"no thumbnail with sha256 {request.sha256}", metadata={"sha256": request.sha256})
        return pb.GetThumbnailResponse(
            thumbnail=jobs_pb2.Thumbnail(
                sha256=thumb.sha256, format=thumb.format, width=thumb.width, height=thumb.height, data=thumb.data
            )
        )

    @handles_errors
    async def ListResults(
        self,
        request: pb.ListResultsRequest,
        context: Ctx,  # type: ignore[type-arg]
    ) -> pb.ListResultsResponse:
        """Results of succeeded jobs after the page token, in job id order (a producer's own only;
        of one crawl's pages with ``crawl_id``; with ``changed_since``, of the pages that changed
        since then)."""
        size = page_size(request.page_size, default=100, maximum=MAX_PAGE_SIZE)
        cursor = page_cursor(request.page_token) or 0
        if request.crawl_id < 0:
            raise InvalidArgument("crawl_id", "must be a positive crawl id, or 0 for every job's results")
        url_prefix = convert.bounded_text(request.url_prefix, "url_prefix", limit=MAX_FILTER_TEXT)
        changed_since = (
            request.changed_since.ToDatetime(tzinfo=convert.UTC) if request.HasField("changed_since") else None
        )
        if request.crawl_id and (url_prefix or changed_since is not None):
            raise InvalidArgument("crawl_id", "cannot be combined with url_prefix or changed_since")
        rows = await self._admin.results_after(
            cursor,
            size,
            request.kind or None,
            max_bytes=RESULT_PAGE_BYTES,
            owner=visible_owner(),
            crawl_id=request.crawl_id or None,
            url_prefix=url_prefix or None,
            changed_since=changed_since,
        )
        entries = [
            pb.ResultEntry(
                job_id=r.id,
                kind=r.kind,
                target_url=r.target_url or "",
                finished_at=convert.timestamp(r.finished_at),
                result=jobs_pb2.JobResult.FromString(r.result),
                spec=jobs_pb2.JobSpec.FromString(r.spec),
            )
            for r in rows
        ]
        # Full by count, or cut by bytes (fewer rows than the count allowed): more may follow.
        more = bool(rows) and (len(rows) == size or rows[0].window_rows > len(rows))
        next_token = str(rows[-1].id) if more else ""
        return pb.ListResultsResponse(results=entries, next_page_token=next_token)
