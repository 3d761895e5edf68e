"""How a completed page is stored: its result and the page's large columns uncompressed (migration
0023), so that completing a job spends no database CPU on compression."""

from __future__ import annotations

import json

import asyncpg

from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from tests.conftest import RunningCoordinator
from tests.helpers import lease_request, scrape

URL = "https://store.example/teapot"
# Repetitive, so compressible: pglz would compress every one of these columns.
PAGE_COLUMNS = ("main_text", "links", "json_ld", "headers")


def large_page() -> jobs_pb2.ScrapeResult:
    return jobs_pb2.ScrapeResult(
        final_url=URL,
        status_code=200,
        rendered_with=jobs_pb2.RENDER_MODE_HTTP,
        main_text="A teapot of fine porcelain. " * 2_000,
        links=[jobs_pb2.Link(url=f"https://store.example/item/{n}", text="Another item") for n in range(300)],
        json_ld=[json.dumps({"@type": "Product", "name": "Teapot", "description": "porcelain " * 500})],
        headers={f"x-header-{n}": "a value repeated " * 10 for n in range(40)},
    )


async def test_a_large_page_and_its_result_are_stored_uncompressed(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    enqueued = await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[scrape(URL)]))
    (job,) = (await coord.queue.Lease(lease_request(max_jobs=1))).jobs
    completed = pb.CompletedJob(
        job_id=job.id, lease_token=job.lease_token, result=jobs_pb2.JobResult(scrape=large_page())
    )
    await coord.queue.Complete(pb.CompleteRequest(jobs=[completed]), timeout=30)

    job_id = enqueued.jobs[0].id
    result = await db.fetchrow(
        "SELECT octet_length(result) AS size, pg_column_compression(result) AS compression FROM jobs WHERE id = $1",
        job_id,
    )
    assert result is not None
    assert result["size"] > 8192, "large enough that PostgreSQL would compress it"
    assert result["compression"] is None
    for column in PAGE_COLUMNS:
        page = await db.fetchrow(
            f"SELECT pg_column_size({column}) AS size, pg_column_compression({column}) AS compression"
            " FROM pages WHERE job_id = $1",
            job_id,
        )
        assert page is not None
        assert page["size"] > 4096, column
        assert page["compression"] is None, column
