"""A stand-in worker for crawls: leases the pages due and completes each with the links a site
map gives it, as a worker that fetched them would."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from crawlfleet.v1 import crawls_pb2, crawls_pb2_grpc, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator
from tests.helpers import eventually, lease_request

# Links of each page, by URL; pages not listed have none.
SiteLinks = Mapping[str, Sequence[str]]


def page_result(job: pb.LeasedJob, links: Sequence[str]) -> pb.CompletedJob:
    url = job.spec.scrape.url
    page = jobs_pb2.ScrapeResult(
        final_url=url,
        status_code=200,
        title=f"Page {url}",
        content_type="text/html",
        rendered_with=jobs_pb2.RENDER_MODE_HTTP,
        # As if every link were inside the parts a crawl's follow selectors name.
        links=[jobs_pb2.Link(url=link, followed=True) for link in links],
    )
    return pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=jobs_pb2.JobResult(scrape=page))


async def lease_pages(coord: RunningCoordinator, max_jobs: int = 100) -> list[pb.LeasedJob]:
    return list((await coord.queue.Lease(lease_request(worker_id="crawl-worker", max_jobs=max_jobs))).jobs)


async def complete_pages(coord: RunningCoordinator, jobs: Sequence[pb.LeasedJob], site: SiteLinks) -> None:
    done = [page_result(job, site.get(job.spec.scrape.url, ())) for job in jobs]
    if done:
        await coord.queue.Complete(pb.CompleteRequest(jobs=done))


async def crawl_through(coord: RunningCoordinator, site: SiteLinks) -> list[int]:
    """Completes pages until none is due; the ids of the jobs completed."""
    completed: list[int] = []
    while jobs := await lease_pages(coord):
        await complete_pages(coord, jobs, site)
        completed += [job.id for job in jobs]
    return completed


async def get_crawl(coord: RunningCoordinator, crawl_id: int) -> crawls_pb2.Crawl:
    stub = crawls_pb2_grpc.CrawlsStub(coord.channel)
    return (await stub.GetCrawl(crawls_pb2.GetCrawlRequest(crawl_id=crawl_id))).crawl


async def until_ended(coord: RunningCoordinator, crawl_id: int) -> crawls_pb2.Crawl:
    """The crawl once a coordinator has seen it has no job left (at a reaper tick)."""

    async def ended() -> bool:
        return (await get_crawl(coord, crawl_id)).state != crawls_pb2.CRAWL_STATE_RUNNING

    await eventually(ended, what=f"crawl {crawl_id} to end")
    return await get_crawl(coord, crawl_id)
