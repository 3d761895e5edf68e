"""Jobs: filtered and paged as ListJobs does it (newest first, a cursor), one job in full (attempts,
errors, the page's extracted data, its images' thumbnails), thumbnails' bytes, and cancelling."""

from __future__ import annotations

from google.protobuf import timestamp_pb2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crawlfleet.common.states import JobState
from crawlfleet.dashboard.gateway import DashboardError, Metadata, Stubs
from crawlfleet.dashboard.web import (
    call,
    checked_form,
    int_param,
    redirect_with_note,
    render,
    text_param,
    timeout,
)
from crawlfleet.v1 import admin_pb2, jobs_pb2

MAX_JOB_ID = 2**63 - 1
PAGE_SIZE = 50
SHA256_LENGTH = 64
THUMBNAIL_TYPES = {"WEBP": "image/webp", "JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif"}


def job_filter(request: Request, *, states: list[JobState] | None = None) -> admin_pb2.JobFilter:
    """The JobFilter of the page's query parameters; a 400 naming the parameter when one is wrong."""
    params = request.query_params
    if states is None:
        states = []
        for name in params.getlist("state"):
            if not name:
                continue
            try:
                states.append(JobState(name))
            except ValueError:
                known = ", ".join(JobState)
                raise DashboardError(400, f"state: unknown state {name!r} (one of {known})") from None
    return admin_pb2.JobFilter(
        states=[s.to_proto() for s in states],
        kind=text_param(params, "kind", max_length=100),
        url_prefix=text_param(params, "url_prefix"),
        error_type=text_param(params, "error_type", max_length=200),
        created_after=day_param(request, "created_after"),
        created_before=day_param(request, "created_before"),
    )


def day_param(request: Request, name: str) -> timestamp_pb2.Timestamp | None:
    text = text_param(request.query_params, name, max_length=40)
    if not text:
        return None
    stamp = timestamp_pb2.Timestamp()
    try:
        stamp.FromJsonString(text if "T" in text else f"{text}T00:00:00Z")
    except ValueError:
        raise DashboardError(400, f"{name}: expected a date (2026-12-31) or RFC 3339 time, got {text!r}") from None
    return stamp


async def list_jobs(request: Request, flt: admin_pb2.JobFilter) -> admin_pb2.ListJobsResponse:
    query = admin_pb2.ListJobsRequest(
        filter=flt,
        page_size=int_param(request.query_params, "page_size", default=PAGE_SIZE, low=1, high=1000),
        page_token=text_param(request.query_params, "page_token", max_length=100),
    )
    wait = timeout(request)

    async def rpc(stubs: Stubs, metadata: Metadata) -> admin_pb2.ListJobsResponse:
        return await stubs.admin.ListJobs(query, metadata=metadata, timeout=wait)

    return await call(request, rpc)


async def jobs(request: Request) -> Response:
    flt = job_filter(request)
    found = await list_jobs(request, flt)
    chosen = {s for s in request.query_params.getlist("state") if s}
    return render(
        request,
        "jobs.html",
        jobs=found.jobs,
        next_page_token=found.next_page_token,
        states=list(JobState),
        chosen=chosen,
        params=request.query_params,
    )


def job_id_of(request: Request) -> int:
    return int_param(request.path_params, "job_id", default=0, low=1, high=MAX_JOB_ID)


async def get_job(request: Request, job_id: int) -> jobs_pb2.Job:
    wait = timeout(request)

    async def rpc(stubs: Stubs, metadata: Metadata) -> admin_pb2.GetJobResponse:
        return await stubs.admin.GetJob(admin_pb2.GetJobRequest(job_id=job_id), metadata=metadata, timeout=wait)

    return (await call(request, rpc)).job


async def job_detail(request: Request) -> Response:
    job = await get_job(request, job_id_of(request))
    page = job.result.scrape if job.result.HasField("scrape") else None
    return render(
        request,
        "job.html",
        job=job,
        page=page,
        state=JobState.from_proto(job.state),
        spec_kind=job.spec.WhichOneof("payload") or "",
    )


async def thumbnail(request: Request) -> Response:
    sha256 = request.path_params["sha256"]
    if len(sha256) != SHA256_LENGTH or any(c not in "0123456789abcdef" for c in sha256):
        raise DashboardError(400, "sha256: expected 64 lower-case hex digits")
    wait = timeout(request)

    async def rpc(stubs: Stubs, metadata: Metadata) -> admin_pb2.GetThumbnailResponse:
        return await stubs.admin.GetThumbnail(
            admin_pb2.GetThumbnailRequest(sha256=sha256), metadata=metadata, timeout=wait
        )

    thumb = (await call(request, rpc)).thumbnail
    media_type = THUMBNAIL_TYPES.get(thumb.format.upper(), "application/octet-stream")
    # Content-addressed: the bytes of a hash never change.
    headers = {"Cache-Control": "private, max-age=86400, immutable", "X-Content-Type-Options": "nosniff"}
    return Response(thumb.data, media_type=media_type, headers=headers)


async def cancel(request: Request) -> Response:
    await checked_form(request)
    job_id = job_id_of(request)
    wait = timeout(request)

    async def rpc(stubs: Stubs, metadata: Metadata) -> admin_pb2.CancelJobResponse:
        return await stubs.admin.CancelJob(admin_pb2.CancelJobRequest(job_id=job_id), metadata=metadata, timeout=wait)

    done = await call(request, rpc)
    return redirect_with_note(f"/jobs/{job_id}", f"cancel asked: the job is {JobState.from_proto(done.state)}")


ROUTES = [
    Route("/jobs", jobs),
    Route("/jobs/{job_id}", job_detail),
    Route("/jobs/{job_id}/cancel", cancel, methods=["POST"]),
    Route("/thumbnails/{sha256}", thumbnail),
]
