"""crawlfleet.v1.Admin: the operator surface of the queue."""

from __future__ import annotations

import re

import grpc
from crawlfleet.v1 import admin_pb2 as pb
from crawlfleet.v1 import admin_pb2_grpc, jobs_pb2

from coordinator import convert
from coordinator.errors import InvalidArgument, NotFound
from coordinator.queue import Queue
from coordinator.status import handles_errors

Ctx = grpc.aio.ServicerContext
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def job_state(name: str) -> jobs_pb2.JobState.ValueType:
    return jobs_pb2.JobState.Value(f"JOB_STATE_{name.upper()}")


class AdminServicer(admin_pb2_grpc.AdminServicer):
    def __init__(self, queue: Queue) -> None:
        self._queue = queue

    @handles_errors
    async def GetJob(self, request: pb.GetJobRequest, context: Ctx) -> pb.GetJobResponse:  # type: ignore[type-arg]
        """One job with its finished attempts and its result."""
        row, attempts = await self._queue.get_job(convert.positive_id(request.job_id, "job_id"))
        job = jobs_pb2.Job(
            id=row["id"],
            kind=row["kind"],
            state=job_state(row["state"]),
            spec=jobs_pb2.JobSpec.FromString(row["spec"]),
            target_url=row["target_url"] or "",
            attempt=row["attempt"],
            max_attempts=row["max_attempts"],
            created_at=convert.timestamp(row["created_at"]),
            run_at=convert.timestamp(row["run_at"]),
            leased_at=convert.timestamp(row["leased_at"]),
            lease_expires_at=convert.timestamp(row["lease_expires_at"]),
            leased_by=row["leased_by"] or "",
            finished_at=convert.timestamp(row["finished_at"]),
            last_error=row["last_error"] or "",
            cancel_requested=row["cancel_requested"],
            attempts=[
                jobs_pb2.Attempt(
                    number=a["attempt"],
                    worker_id=a["worker_id"],
                    started_at=convert.timestamp(a["started_at"]),
                    finished_at=convert.timestamp(a["finished_at"]),
                    outcome=a["outcome"],
                    error_type=a["error_type"] or "",
                    error_message=a["error_message"] or "",
                )
                for a in attempts
            ],
        )
        if row["result"] is not None:
            job.result.ParseFromString(row["result"])
        return pb.GetJobResponse(job=job)

    @handles_errors
    async def CancelJob(self, request: pb.CancelJobRequest, context: Ctx) -> pb.CancelJobResponse:  # type: ignore[type-arg]
        """Cancel a job; a leased one ends at its worker's next heartbeat."""
        state = await self._queue.cancel(convert.positive_id(request.job_id, "job_id"))
        return pb.CancelJobResponse(state=job_state(state))

    @handles_errors
    async def RequeueDeadJobs(
        self,
        request: pb.RequeueDeadJobsRequest,
        context: Ctx,  # type: ignore[type-arg]
    ) -> pb.RequeueDeadJobsResponse:
        """Dead jobs back to queued with a fresh attempt budget."""
        if not request.job_ids:
            raise InvalidArgument("job_ids", "at least one job id is required")
        ids = [convert.positive_id(j, f"job_ids[{i}]") for i, j in enumerate(request.job_ids)]
        return pb.RequeueDeadJobsResponse(requeued_job_ids=await self._queue.requeue_dead(ids))

    @handles_errors
    async def GetQueueStats(
        self,
        request: pb.GetQueueStatsRequest,
        context: Ctx,  # type: ignore[type-arg]
    ) -> pb.GetQueueStatsResponse:
        """Counts of jobs by state (every state, zeros included)."""
        counts = await self._queue.count_by_state()
        return pb.GetQueueStatsResponse(
            states=[
                pb.StateCount(state=job_state(name), count=counts.get(name, 0))
                for name in ("queued", "leased", "succeeded", "dead", "cancelled")
            ]
        )

    @handles_errors
    async def GetThumbnail(
        self,
        request: pb.GetThumbnailRequest,
        context: Ctx,  # type: ignore[type-arg]
    ) -> pb.GetThumbnailResponse:
        """A stored thumbnail with its bytes."""
        if not _SHA256.match(request.sha256):
            raise InvalidArgument("sha256", "must be 64 lower-case hex digits")
        row = await self._queue.thumbnail(request.sha256)
        if row is None:
            raise NotFound(f"no thumbnail with sha256 {request.sha256}", metadata={"sha256": request.sha256})
        return pb.GetThumbnailResponse(
            thumbnail=jobs_pb2.Thumbnail(
                sha256=row["sha256"], format=row["format"], width=row["width"], height=row["height"], data=row["data"]
            )
        )

    @handles_errors
    async def ListResults(
        self,
        request: pb.ListResultsRequest,
        context: Ctx,  # type: ignore[type-arg]
    ) -> pb.ListResultsResponse:
        """Results of succeeded jobs after the page token, in job id order."""
        size = request.page_size or DEFAULT_PAGE_SIZE
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise InvalidArgument("page_size", f"must be between 1 and {MAX_PAGE_SIZE}")
        token = request.page_token
        if token and not token.isdigit():
            raise InvalidArgument("page_token", "is not a token from a previous ListResults response")
        rows = await self._queue.results_after(int(token or 0), size, request.kind or None)
        entries = [
            pb.ResultEntry(
                job_id=r["id"],
                kind=r["kind"],
                target_url=r["target_url"] or "",
                finished_at=convert.timestamp(r["finished_at"]),
                result=jobs_pb2.JobResult.FromString(r["result"]),
            )
            for r in rows
        ]
        next_token = str(rows[-1]["id"]) if len(rows) == size else ""
        return pb.ListResultsResponse(results=entries, next_page_token=next_token)
