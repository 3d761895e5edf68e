"""Jobs in a given state on an in-process coordinator, made through its API as a worker would."""

from __future__ import annotations

from crawlfleet.v1 import admin_pb2, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator
from tests.helpers import lease_request, scrape


async def enqueue(coord: RunningCoordinator, *specs: jobs_pb2.JobSpec) -> list[int]:
    return [j.id for j in (await coord.queue.Enqueue(pb.EnqueueRequest(jobs=list(specs)))).jobs]


async def get_job(coord: RunningCoordinator, job_id: int) -> jobs_pb2.Job:
    return (await coord.admin.GetJob(admin_pb2.GetJobRequest(job_id=job_id))).job


async def fail(coord: RunningCoordinator, job: pb.LeasedJob, error_type: str = "http_4xx") -> None:
    """Fails a leased job for good: it goes dead."""
    await coord.queue.Fail(
        pb.FailRequest(
            job_id=job.id, lease_token=job.lease_token, error_type=error_type, error_message="HTTP 404", retryable=False
        )
    )


async def make_dead(coord: RunningCoordinator, url: str, error_type: str = "http_4xx") -> int:
    (job_id,) = await enqueue(coord, scrape(url))
    (job,) = (await coord.queue.Lease(lease_request(worker_id="w-dead"))).jobs
    await fail(coord, job, error_type)
    return job_id


async def complete(coord: RunningCoordinator, job: pb.LeasedJob, title: str = "A page") -> None:
    url = job.spec.scrape.url
    page = jobs_pb2.ScrapeResult(
        final_url=url,
        status_code=200,
        title=title,
        content_type="text/html",
        rendered_with=jobs_pb2.RENDER_MODE_HTTP,
        images=[jobs_pb2.ImageResult(url=url + "broken.png", error_type="corrupt_image", error_message="bad bytes")],
    )
    done = pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=jobs_pb2.JobResult(scrape=page))
    await coord.queue.Complete(pb.CompleteRequest(jobs=[done]))


async def make_succeeded(coord: RunningCoordinator, url: str, title: str = "A page") -> int:
    (job_id,) = await enqueue(coord, scrape(url))
    (job,) = (await coord.queue.Lease(lease_request(worker_id="w-ok"))).jobs
    await complete(coord, job, title)
    return job_id
