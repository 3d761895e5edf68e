"""The dead letter: dead jobs with their last error, requeue (chosen ones, or every one a filter
matches) and purge, each behind a confirmation page; the coordinator decides who may."""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import duration_pb2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crawlfleet.common.states import JobState
from crawlfleet.dashboard.gateway import DashboardError, Metadata, Stubs
from crawlfleet.dashboard.pages.jobs import MAX_JOB_ID, job_filter, list_jobs
from crawlfleet.dashboard.web import call, checked_form, int_param, redirect_with_note, render, text_param, timeout
from crawlfleet.v1 import admin_pb2

MAX_REQUEUE = 1000  # RequeueDeadJobs by filter takes at most this many per call by default
FILTER_FIELDS = ("kind", "url_prefix", "error_type")
DAY = 86_400


async def dead(request: Request) -> Response:
    found = await list_jobs(request, job_filter(request, states=[JobState.DEAD]))
    return render(
        request,
        "dead.html",
        jobs=found.jobs,
        next_page_token=found.next_page_token,
        params=request.query_params,
    )


def chosen_ids(form: FormData) -> list[int]:
    ids = []
    for text in form.getlist("job_id"):
        try:
            job_id = int(str(text))
        except ValueError:
            raise DashboardError(400, f"job_id: not a job id: {text!r}") from None
        if not 1 <= job_id <= MAX_JOB_ID:
            raise DashboardError(400, f"job_id: not a job id: {job_id}")
        ids.append(job_id)
    return ids


def filter_of(form: Mapping[str, object]) -> dict[str, str]:
    return {name: text_param(form, name) for name in FILTER_FIELDS if text_param(form, name)}


async def requeue_confirm(request: Request) -> Response:
    """The confirmation step: what would be requeued, nothing done yet."""
    form = await checked_form(request)
    ids = chosen_ids(form)
    everything = form.get("scope") == "filter"
    if not ids and not everything:
        raise DashboardError(400, "job_id: choose the dead jobs to requeue (or requeue all matching the filter)")
    flt = filter_of(form)
    if everything:
        described = ", ".join(f"{k} = {v}" for k, v in flt.items()) or "none: every dead job"
        message = f"Requeue up to {MAX_REQUEUE} dead jobs matching the filter ({described})?"
        fields: dict[str, object] = {"scope": "filter", **flt}
    else:
        message = f"Requeue {len(ids)} dead job(s): {', '.join(map(str, ids))}?"
        fields = {"job_id": ids}
    return render(
        request,
        "confirm.html",
        title="Requeue dead jobs?",
        message=message + " They go back to queued with a fresh attempt budget.",
        action="/dead/requeue",
        fields=fields,
        button="Requeue",
        back="/dead",
    )


async def requeue(request: Request) -> Response:
    form = await checked_form(request)
    ids = chosen_ids(form)
    if form.get("scope") == "filter":
        flt = filter_of(form)
        matching = admin_pb2.JobFilter(
            kind=flt.get("kind", ""), url_prefix=flt.get("url_prefix", ""), error_type=flt.get("error_type", "")
        )
        query = admin_pb2.RequeueDeadJobsRequest(filter=matching, limit=MAX_REQUEUE)
    elif ids:
        query = admin_pb2.RequeueDeadJobsRequest(job_ids=ids)
    else:
        raise DashboardError(400, "job_id: choose the dead jobs to requeue")
    wait = timeout(request)

    async def rpc(stubs: Stubs, metadata: Metadata) -> admin_pb2.RequeueDeadJobsResponse:
        return await stubs.admin.RequeueDeadJobs(query, metadata=metadata, timeout=wait)

    done = await call(request, rpc)
    requeued = list(done.requeued_job_ids)
    note = f"requeued {len(requeued)} job(s)" + (f": {', '.join(map(str, requeued[:20]))}" if requeued else "")
    if ids and len(requeued) < len(ids):
        note += " (the others have a live job for their URL, or are no longer dead)"
    return redirect_with_note("/dead", note)


async def purge_confirm(request: Request) -> Response:
    days = int_param(request.query_params, "older_than_days", default=7, low=0, high=36_500)
    return render(
        request,
        "confirm.html",
        title="Purge dead jobs?",
        message=f"Delete every dead job that died more than {days} day(s) ago, with its attempts and errors "
        "(up to 10000 per click). This cannot be undone.",
        action="/dead/purge",
        fields={"older_than_days": days},
        button="Purge",
        back="/dead",
    )


async def purge(request: Request) -> Response:
    form = await checked_form(request)
    days = int_param(form, "older_than_days", default=7, low=0, high=36_500)
    query = admin_pb2.PurgeJobsRequest(
        finished_before=duration_pb2.Duration(seconds=days * DAY), states=[JobState.DEAD.to_proto()]
    )
    wait = timeout(request)

    async def rpc(stubs: Stubs, metadata: Metadata) -> admin_pb2.PurgeJobsResponse:
        return await stubs.admin.PurgeJobs(query, metadata=metadata, timeout=wait)

    done = await call(request, rpc)
    return redirect_with_note("/dead", f"purged {done.deleted_jobs} dead job(s) and {done.deleted_images} image(s)")


ROUTES = [
    Route("/dead", dead),
    Route("/dead/requeue/confirm", requeue_confirm, methods=["POST"]),
    Route("/dead/requeue", requeue, methods=["POST"]),
    Route("/dead/purge", purge_confirm, methods=["GET"]),
    Route("/dead/purge", purge, methods=["POST"]),
]
