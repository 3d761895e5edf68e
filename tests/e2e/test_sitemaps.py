"""A sitemap job end to end: a coordinator and a worker process (leasing every kind, as by default)
read a site's sitemaps on loopback through robots.txt, an index and gzipped and text sitemaps; the
assertions read what the coordinator stored."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import asyncpg
import grpc
import pytest

from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import job_queue_pb2_grpc, jobs_pb2
from tests.e2e.processes import Fleet
from tests.helpers import eventually
from tests.site import LocalSite, blob

pytestmark = pytest.mark.e2e
NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
PRODUCTS = 1200


@pytest.fixture
def site() -> Iterator[LocalSite]:
    served = LocalSite().start()
    b = served.base
    products = "".join(f"<url><loc>{b}/product/{n}</loc><lastmod>2024-05-06</lastmod></url>" for n in range(PRODUCTS))
    served.routes.update(
        {
            "/robots.txt": blob(f"User-agent: *\nAllow: /\nSitemap: {b}/sitemap_index.xml\n".encode(), "text/plain"),
            "/sitemap_index.xml": blob(
                f"<sitemapindex {NS}><sitemap><loc>{b}/products.xml.gz</loc></sitemap>"
                f"<sitemap><loc>{b}/pages.txt</loc></sitemap></sitemapindex>".encode(),
                "application/xml",
            ),
            "/products.xml.gz": blob(gzip.compress(f"<urlset {NS}>{products}</urlset>".encode()), "application/x-gzip"),
            "/pages.txt": blob(f"{b}/about\n{b}/contact\n".encode(), "text/plain; charset=utf-8"),
        }
    )
    yield served
    served.stop()


async def test_a_worker_process_lists_a_sites_urls_from_its_sitemaps(
    fleet: Fleet, db_dsn: str, db: asyncpg.Pool, site: LocalSite
) -> None:
    coordinator = await fleet.coordinator("coordinator", db_dsn)
    fleet.worker("worker", coordinator.port or 0, "--slots", "2")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{coordinator.port}") as channel:
        spec = jobs_pb2.JobSpec(sitemap=jobs_pb2.SitemapSpec(url=site.url("/")))
        (job,) = (await job_queue_pb2_grpc.JobQueueStub(channel).Enqueue(pb.EnqueueRequest(jobs=[spec]))).jobs

    async def finished() -> asyncpg.Record | None:
        row = await db.fetchrow("SELECT state::text, kind, host, last_error, result FROM jobs WHERE id = $1", job.id)
        return row if row is not None and row["state"] in ("succeeded", "dead") else None

    row = await eventually(finished, timeout=90, what="the sitemap job to finish")
    assert row is not None
    assert (row["state"], row["kind"], row["host"]) == ("succeeded", "sitemap", site.base.removeprefix("http://"))
    found = jobs_pb2.JobResult.FromString(row["result"]).sitemap
    urls = [entry.url for entry in found.entries]
    assert urls == [*(site.url(f"/product/{n}") for n in range(PRODUCTS)), site.url("/about"), site.url("/contact")]
    assert all(entry.HasField("lastmod") for entry in found.entries[:PRODUCTS])
    assert list(found.sitemaps) == [site.url(p) for p in ("/sitemap_index.xml", "/products.xml.gz", "/pages.txt")]
    assert list(found.errors) == [site.url("/sitemap.xml") + ": http_4xx: HTTP 404 from " + site.url("/sitemap.xml")]
    assert not found.truncated
