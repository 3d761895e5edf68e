"""ListResults pages by bytes as well as by count: large results export completely."""

from __future__ import annotations

from crawlfleet.client import AsyncClient
from crawlfleet.coordinator.api.admin import RESULT_PAGE_BYTES
from crawlfleet.v1 import admin_pb2, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator
from tests.helpers import lease_request, scrape

# 40 results of 900 kB: a page of 100 (the default) would be 36 MB, past the server's 32 MiB send
# limit, and every page of them used to fail at the same cursor.
RESULTS = 40
MAIN_TEXT_BYTES = 900_000


def large_result(n: int) -> jobs_pb2.JobResult:
    page = jobs_pb2.ScrapeResult(
        final_url=f"https://large.example/{n}",
        status_code=200,
        rendered_with=jobs_pb2.RENDER_MODE_HTTP,
        main_text=f"{n:04d}" + "x" * (MAIN_TEXT_BYTES - 4),
    )
    return jobs_pb2.JobResult(scrape=page)


async def store_large_results(coord: RunningCoordinator) -> list[int]:
    enqueued = await coord.queue.Enqueue(
        pb.EnqueueRequest(jobs=[scrape(f"https://large.example/{n}") for n in range(RESULTS)])
    )
    ids = [job.id for job in enqueued.jobs]
    # One lease at a time, completed at once: a slow machine never outlives a lease.
    for _ in ids:
        (job,) = (await coord.queue.Lease(lease_request(max_jobs=1))).jobs
        result = large_result(ids.index(job.id))
        completed = pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=result)
        await coord.queue.Complete(pb.CompleteRequest(jobs=[completed]), timeout=30)
    return ids


async def test_large_results_page_by_bytes_and_export_completely(coord: RunningCoordinator) -> None:
    ids = await store_large_results(coord)

    # The raw RPC: pages cut by bytes, each continuing after the last result it returned.
    listed: list[int] = []
    token = ""
    pages = 0
    while True:
        page = await coord.admin.ListResults(admin_pb2.ListResultsRequest(page_size=100, page_token=token), timeout=30)
        assert page.results, "a page always holds at least one result"
        assert page.ByteSize() <= RESULT_PAGE_BYTES + MAIN_TEXT_BYTES + 4096
        listed += [entry.job_id for entry in page.results]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert listed == ids
    assert pages > 1

    # The client library pages the same way, with its own default page size.
    async with AsyncClient(coord.address) as client:
        exported = [entry async for entry in client.iter_results()]
    assert [entry.job_id for entry in exported] == ids
    assert [entry.result.scrape.main_text[:4] for entry in exported] == [f"{n:04d}" for n in range(RESULTS)]


async def test_one_result_larger_than_the_page_budget_still_comes(coord: RunningCoordinator) -> None:
    enqueued = await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[scrape("https://huge.example/")]))
    (job,) = (await coord.queue.Lease(lease_request(max_jobs=1))).jobs
    result = large_result(0)
    # Past the page budget, within what the test's channel receives (4 MiB).
    links = (RESULT_PAGE_BYTES - MAIN_TEXT_BYTES) // 400 + 200
    result.scrape.links.extend(jobs_pb2.Link(url=f"https://huge.example/{n}/" + "p" * 400) for n in range(links))
    assert RESULT_PAGE_BYTES < result.ByteSize() < 4 * 1024 * 1024
    await coord.queue.Complete(
        pb.CompleteRequest(jobs=[pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=result)]),
        timeout=30,
    )
    page = await coord.admin.ListResults(admin_pb2.ListResultsRequest(page_size=10), timeout=30)
    assert [entry.job_id for entry in page.results] == [enqueued.jobs[0].id]
    assert page.next_page_token == ""
