"""Sitemap jobs on the command line: enqueued with --kind sitemap, shown and exported."""

from __future__ import annotations

import json

from google.protobuf import timestamp_pb2

from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from tests.conftest import RunningCoordinator
from tests.helpers import lease_request
from tests.integration.jobs import get_job
from tests.integration.test_cli import cli


def sitemap_result(urls: int) -> jobs_pb2.JobResult:
    entries = [jobs_pb2.SitemapEntry(url=f"https://shop.example/p/{n}") for n in range(urls)]
    entries[0].lastmod.CopyFrom(timestamp_pb2.Timestamp(seconds=1_715_000_000))
    return jobs_pb2.JobResult(
        sitemap=jobs_pb2.SitemapResult(
            entries=entries,
            sitemaps=["https://shop.example/sitemap.xml"],
            errors=["https://cdn.example/sitemap.xml: other_host: listed in robots.txt: not read"],
            truncated=True,
        )
    )


async def test_sitemap_jobs_are_enqueued_shown_and_exported(coord: RunningCoordinator) -> None:
    enqueued = await cli(
        coord, "--json", "enqueue", "--kind", "sitemap", "https://shop.example/", "https://shop.example/news.xml"
    )
    assert enqueued.code == 0, enqueued.err
    ids = [int(j["id"]) for j in enqueued.json()["jobs"]]
    job = await get_job(coord, ids[0])
    assert job.kind == "sitemap" and job.spec.sitemap.url == "https://shop.example/"
    # Its URL's scrape job is another job.
    scraped = await cli(coord, "--json", "enqueue", "https://shop.example/")
    assert scraped.json()["created"] == 1

    leased = (await coord.queue.Lease(lease_request(worker_id="w-sitemap", max_jobs=1))).jobs
    assert [j.id for j in leased] == [ids[0]]
    done = pb.CompletedJob(job_id=ids[0], lease_token=leased[0].lease_token, result=sitemap_result(25))
    await coord.queue.Complete(pb.CompleteRequest(jobs=[done]))

    shown = await cli(coord, "jobs", "show", str(ids[0]))
    assert shown.code == 0, shown.err
    for text in (
        "(sitemap)",
        "max URLs",
        "the worker's default",
        "URLs        25  (truncated",
        "1 read, 1 error(s)",
        "https://shop.example/p/0  2024-05-06",
        "https://shop.example/p/9",
        "... 15 more",
        "other_host",
    ):
        assert text in shown.out, text
    assert "https://shop.example/p/10" not in shown.out

    exported = await cli(coord, "export", "--kind", "sitemap")
    assert exported.code == 0, exported.err
    (line,) = exported.out.splitlines()
    record = json.loads(line)
    assert record["kind"] == "sitemap" and record["url"] == "https://shop.example/"
    assert len(record["result"]["sitemap"]["entries"]) == 25 and record["result"]["sitemap"]["truncated"] is True
