"""Sitemap jobs against a site on loopback: the handler with the worker's real guarded fetcher, then
the whole path (Enqueue, an in-process worker, the stored result, GetJob)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gzip
import logging
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from crawlfleet.common.logs import job_log
from crawlfleet.v1 import admin_pb2, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.worker.context import JobContext
from crawlfleet.worker.errors import JobError
from crawlfleet.worker.handlers.sitemap import run_sitemap
from crawlfleet.worker.pipeline.resources import PipelineResources
from crawlfleet.worker.pipeline.settings import ScrapeSettings
from crawlfleet.worker.pipeline.sitemap_settings import SitemapSettings
from crawlfleet.worker.runner import Worker
from crawlfleet.worker.settings import WorkerSettings
from tests.conftest import StartCoordinator
from tests.helpers import error_info, eventually, lease_request
from tests.site import LocalSite, Response, blob, compression_bomb, page

pytestmark = pytest.mark.timeout(120)

MIB = 1024 * 1024
NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
SETTINGS = WorkerSettings(
    worker_id="sitemaps-test",
    scrape=ScrapeSettings(allow_loopback=True, http_timeout=10.0),
    sitemap=SitemapSettings(max_bytes=MIB),
)


def urlset(*locs: str, lastmod: str = "") -> bytes:
    stamp = f"<lastmod>{lastmod}</lastmod>" if lastmod else ""
    items = "".join(f"<url><loc>{loc}</loc>{stamp}<changefreq>daily</changefreq></url>" for loc in locs)
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset {NS}>{items}</urlset>'.encode()


def index(*locs: str) -> bytes:
    items = "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs)
    return f'<?xml version="1.0" encoding="UTF-8"?><sitemapindex {NS}>{items}</sitemapindex>'.encode()


def xml(body: bytes, status: int = 200, *, encoding: str = "", retry_after: str = "") -> Response:
    headers = {"Content-Type": "application/xml"}
    if encoding:
        headers["Content-Encoding"] = encoding
    if retry_after:
        headers["Retry-After"] = retry_after
    return status, headers, body


def shop(site: LocalSite) -> LocalSite:
    """A shop whose robots.txt names an index (gzipped sitemaps, a text sitemap, a nested index, a
    missing and a broken sitemap) and a sitemap on another host, and which has a /sitemap.xml too."""
    b = site.base
    site.routes.update(
        {
            "/robots.txt": lambda: (
                200,
                {"Content-Type": "text/plain"},
                f"User-agent: *\nDisallow: /cart\n\nSitemap: {b}/sitemap_index.xml\n"
                f"Sitemap: https://cdn.elsewhere.example/sitemap.xml\nSitemap: not a url\n".encode(),
            ),
            "/sitemap_index.xml": lambda: xml(
                index(
                    f"{b}/sitemaps/products.xml.gz",
                    f"{b}/sitemaps/pages.txt",
                    f"{b}/sitemaps/missing.xml",
                    f"{b}/sitemaps/broken.xml",
                    f"{b}/sitemaps/nested-index.xml",
                    f"{b}/sitemaps/products.xml.gz",  # listed twice, read once
                )
            ),
            "/sitemaps/products.xml.gz": blob(
                gzip.compress(urlset(*(f"{b}/product/{n}" for n in range(3)), lastmod="2024-05-06T07:08:09+02:00")),
                "application/gzip",
            ),
            "/sitemaps/pages.txt": blob(f"{b}/about\n{b}/contact\n/relative\n".encode(), "text/plain"),
            "/sitemaps/broken.xml": lambda: xml(b"<urlset><url><loc>oops</url>"),
            "/sitemaps/nested-index.xml": lambda: xml(
                index(f"{b}/sitemaps/deeper.xml", f"{b}/sitemap_index.xml", f"{b}/sitemaps/deepest-index.xml")
            ),
            "/sitemaps/deeper.xml": lambda: xml(gzip.compress(urlset(f"{b}/deep")), encoding="gzip"),
            "/sitemaps/deepest-index.xml": lambda: xml(index(f"{b}/sitemaps/too-deep.xml")),
            "/sitemaps/too-deep.xml": lambda: xml(urlset(f"{b}/too-deep")),
            "/sitemap.xml": lambda: xml(urlset(f"{b}/", f"{b}/product/0", lastmod="2023-12")),
        }
    )
    return site


@pytest.fixture
def site() -> Iterator[LocalSite]:
    served = LocalSite().start()
    yield served
    served.stop()


@pytest.fixture(scope="module")
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as pool:
        yield pool


@pytest.fixture(scope="module")
async def resources() -> AsyncIterator[PipelineResources]:
    shared = PipelineResources(SETTINGS.scrape, slots=2)
    yield shared
    await shared.aclose()


async def read_sitemaps(
    resources: PipelineResources,
    executor: ThreadPoolExecutor,
    url: str,
    *,
    max_urls: int = 0,
    settings: WorkerSettings = SETTINGS,
) -> jobs_pb2.SitemapResult:
    """One sitemap job, handled as the worker handles it."""
    job = pb.LeasedJob(
        id=1, kind="sitemap", attempt=1, spec=jobs_pb2.JobSpec(sitemap=jobs_pb2.SitemapSpec(url=url, max_urls=max_urls))
    )
    ctx = JobContext(
        settings=settings, resources=resources, log=job_log(logging.getLogger("test"), job), executor=executor
    )
    result = await run_sitemap(job, ctx)
    assert result.WhichOneof("payload") == "sitemap"
    return result.sitemap


async def failure_of(resources: PipelineResources, executor: ThreadPoolExecutor, url: str) -> JobError:
    with pytest.raises(JobError) as caught:
        await read_sitemaps(resources, executor, url)
    return caught.value


def errors_by_url(result: jobs_pb2.SitemapResult, base: str) -> dict[str, str]:
    """Each error entry's error type by its URL (made relative to the site)."""
    pairs = (error.split(": ", 2) for error in result.errors)
    return {url.removeprefix(base): error_type for url, error_type, _ in pairs}


async def test_a_root_reads_robots_txt_sitemaps_and_sitemap_xml(
    resources: PipelineResources, executor: ThreadPoolExecutor, site: LocalSite
) -> None:
    b = shop(site).base
    result = await read_sitemaps(resources, executor, b + "/")
    # Read breadth first: robots.txt's sitemaps and /sitemap.xml, then what the index lists.
    assert [e.url for e in result.entries] == [
        f"{b}/",
        *(f"{b}/product/{n}" for n in range(3)),  # /product/0 as /sitemap.xml listed it first
        f"{b}/about",
        f"{b}/contact",
        f"{b}/deep",
    ]
    dated = [e for e in result.entries if e.HasField("lastmod")]
    lastmods = {e.url.removeprefix(b): e.lastmod.ToDatetime(tzinfo=dt.UTC) for e in dated}
    assert lastmods == {
        "/": dt.datetime(2023, 12, 1, tzinfo=dt.UTC),
        "/product/0": dt.datetime(2023, 12, 1, tzinfo=dt.UTC),
        **{f"/product/{n}": dt.datetime(2024, 5, 6, 5, 8, 9, tzinfo=dt.UTC) for n in (1, 2)},
    }
    assert [s.removeprefix(b) for s in result.sitemaps] == [
        "/sitemap_index.xml",
        "/sitemap.xml",
        "/sitemaps/products.xml.gz",
        "/sitemaps/pages.txt",
        "/sitemaps/nested-index.xml",
        "/sitemaps/deeper.xml",
        "/sitemaps/deepest-index.xml",
    ]
    assert errors_by_url(result, b) == {
        "https://cdn.elsewhere.example/sitemap.xml": "other_host",
        "not a url": "invalid_url",
        "/sitemaps/pages.txt": "invalid_urls",
        "/sitemaps/missing.xml": "http_4xx",
        "/sitemaps/broken.xml": "invalid_sitemap",
        "/sitemaps/too-deep.xml": "too_deep",
    }
    assert not result.truncated
    # Each sitemap was fetched once, the one too deep and the one on another host never.
    assert site.hits["/sitemaps/products.xml.gz"] == site.hits["/sitemap_index.xml"] == 1
    assert site.hits["/sitemaps/too-deep.xml"] == 0


async def test_a_sitemap_url_is_read_alone(
    resources: PipelineResources, executor: ThreadPoolExecutor, site: LocalSite
) -> None:
    b = shop(site).base
    result = await read_sitemaps(resources, executor, b + "/sitemaps/products.xml.gz")
    assert [e.url for e in result.entries] == [f"{b}/product/{n}" for n in range(3)]
    assert list(result.sitemaps) == [b + "/sitemaps/products.xml.gz"] and not result.errors
    assert site.hits["/robots.txt"] == 0


async def test_max_urls_truncates_and_stops_reading(
    resources: PipelineResources, executor: ThreadPoolExecutor, site: LocalSite
) -> None:
    b = shop(site).base
    result = await read_sitemaps(resources, executor, b + "/", max_urls=4)
    assert [e.url for e in result.entries] == [f"{b}/", *(f"{b}/product/{n}" for n in range(3))]
    assert result.truncated
    assert site.hits["/sitemaps/pages.txt"] == 1  # whose first URL was one too many
    assert site.hits["/sitemaps/missing.xml"] == site.hits["/sitemaps/nested-index.xml"] == 0


async def test_the_sitemaps_a_job_reads_are_bounded(
    resources: PipelineResources, executor: ThreadPoolExecutor, site: LocalSite
) -> None:
    b = shop(site).base
    settings = WorkerSettings(worker_id="t", scrape=SETTINGS.scrape, sitemap=SitemapSettings(max_files=2))
    result = await read_sitemaps(resources, executor, b + "/", settings=settings)
    assert [s.removeprefix(b) for s in result.sitemaps] == ["/sitemap_index.xml", "/sitemap.xml"]
    assert result.truncated
    assert errors_by_url(result, b)["/sitemaps/products.xml.gz"] == "not_read"
    assert site.hits["/sitemaps/products.xml.gz"] == 0


async def test_a_site_without_sitemaps_fails_for_good(
    resources: PipelineResources, executor: ThreadPoolExecutor, site: LocalSite
) -> None:
    site.routes["/"] = page(b"<p>home</p>")
    failure = await failure_of(resources, executor, site.url("/"))
    assert (failure.error_type, failure.retryable) == ("http_4xx", False)
    assert site.url("/sitemap.xml") in failure.message
    assert site.hits["/robots.txt"] == site.hits["/sitemap.xml"] == 1


async def test_a_failing_robots_txt_makes_the_failure_retryable(
    resources: PipelineResources, executor: ThreadPoolExecutor, site: LocalSite
) -> None:
    site.routes["/robots.txt"] = lambda: (503, {"Retry-After": "30"}, b"down for maintenance")
    failure = await failure_of(resources, executor, site.url("/"))
    assert (failure.error_type, failure.retryable, failure.retry_after) == ("http_5xx", True, 30.0)


async def test_a_robots_txt_naming_only_other_hosts_is_a_result(
    resources: PipelineResources, executor: ThreadPoolExecutor, site: LocalSite
) -> None:
    site.routes["/robots.txt"] = blob(b"Sitemap: https://sitemaps.elsewhere.example/s.xml\n", "text/plain")
    result = await read_sitemaps(resources, executor, site.url("/"))
    assert not result.entries and not result.sitemaps
    assert errors_by_url(result, site.base) == {
        "https://sitemaps.elsewhere.example/s.xml": "other_host",
        "/sitemap.xml": "http_4xx",
    }


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (lambda: xml(b"oops", 500), ("http_5xx", True)),
        (lambda: xml(b"slow down", 429, retry_after="60"), ("http_429", True)),
        (lambda: xml(b"gone", 410), ("http_4xx", False)),
        (lambda: xml(b"<html><body>soft 404</body></html>"), ("invalid_sitemap", False)),
        (lambda: xml(urlset(*(f"http://h/{n:09}" for n in range(40_000)))), ("sitemap_too_large", False)),
        (lambda: xml(compression_bomb(64 * MIB), encoding="gzip"), ("sitemap_too_large", False)),
        (blob(compression_bomb(64 * MIB), "application/gzip"), ("sitemap_too_large", False)),
    ],
    ids=["5xx", "429", "410", "html", "too-large", "transfer-bomb", "file-bomb"],
)
async def test_a_sitemap_that_cannot_be_read_fails_its_job(
    resources: PipelineResources,
    executor: ThreadPoolExecutor,
    site: LocalSite,
    route: object,
    expected: tuple[str, bool],
) -> None:
    site.routes["/sitemap.xml"] = route  # type: ignore[assignment]
    failure = await failure_of(resources, executor, site.url("/sitemap.xml"))
    assert (failure.error_type, failure.retryable) == expected, failure.message


async def test_a_429_stops_the_jobs_requests(
    resources: PipelineResources, executor: ThreadPoolExecutor, site: LocalSite
) -> None:
    b = site.base
    site.routes.update(
        {
            "/index.xml": lambda: xml(index(f"{b}/a.xml", f"{b}/b.xml", f"{b}/c.xml")),
            "/a.xml": lambda: xml(urlset(f"{b}/a")),
            "/b.xml": lambda: xml(b"slow down", 429, retry_after="60"),
            "/c.xml": lambda: xml(urlset(f"{b}/c")),
        }
    )
    result = await read_sitemaps(resources, executor, b + "/index.xml")
    assert [e.url for e in result.entries] == [f"{b}/a"]
    assert errors_by_url(result, b) == {"/b.xml": "http_429", "/c.xml": "not_read"}
    assert site.hits["/c.xml"] == 0


async def test_every_fetch_passes_the_egress_guard(executor: ThreadPoolExecutor, site: LocalSite) -> None:
    shop(site)
    guarded = PipelineResources(ScrapeSettings(allow_loopback=False), slots=1)
    try:
        failure = await failure_of(guarded, executor, site.url("/sitemaps/products.xml.gz"))
    finally:
        await guarded.aclose()
    assert (failure.error_type, failure.retryable) == ("blocked_destination", False)
    assert site.hits["/sitemaps/products.xml.gz"] == 0


@contextlib.asynccontextmanager
async def running_worker(address: str) -> AsyncIterator[Worker]:
    settings = WorkerSettings(
        coordinator=address,
        worker_id="sitemap-worker",
        slots=2,
        lease_wait=1.0,
        shutdown_grace=0.0,
        scrape=SETTINGS.scrape,
    )
    async with Worker(settings) as worker:
        task = asyncio.create_task(worker.run())
        try:
            yield worker
        finally:
            await worker.shutdown()
            await task


async def test_a_worker_completes_a_sitemap_job_and_its_result_is_stored(
    start_coordinator: StartCoordinator, site: LocalSite
) -> None:
    b = shop(site).base
    coord = await start_coordinator()
    spec = jobs_pb2.JobSpec(sitemap=jobs_pb2.SitemapSpec(url=b.upper().replace("HTTP://", "http://") + "/"))
    (enqueued,) = (await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[spec]))).jobs

    async def finished() -> jobs_pb2.Job | None:
        job = (await coord.admin.GetJob(admin_pb2.GetJobRequest(job_id=enqueued.id))).job
        return job if job.state == jobs_pb2.JOB_STATE_SUCCEEDED else None

    async with running_worker(coord.address):
        job = await eventually(finished, timeout=60, what="the sitemap job to succeed")
    assert job is not None
    assert job.kind == "sitemap" and job.target_url == b + "/"
    urls = [e.url for e in job.result.sitemap.entries]
    assert urls == [f"{b}/", *(f"{b}/product/{n}" for n in range(3)), f"{b}/about", f"{b}/contact", f"{b}/deep"]
    assert b + "/sitemap_index.xml" in job.result.sitemap.sitemaps
    assert any(": other_host: " in error for error in job.result.sitemap.errors)

    # Exported like any result.
    (entry,) = (await coord.admin.ListResults(admin_pb2.ListResultsRequest(kind="sitemap"))).results
    assert entry.job_id == enqueued.id and entry.result == job.result


async def test_sitemap_jobs_dedupe_apart_from_scrape_jobs_of_their_url(start_coordinator: StartCoordinator) -> None:
    coord = await start_coordinator()
    sitemap = jobs_pb2.JobSpec(sitemap=jobs_pb2.SitemapSpec(url="https://shop.example/"))
    twin = jobs_pb2.JobSpec(sitemap=jobs_pb2.SitemapSpec(url="HTTPS://shop.example:443", max_urls=10))
    scrape = jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url="https://shop.example/"))
    jobs = [(await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[spec]))).jobs[0] for spec in (sitemap, twin, scrape)]
    assert [j.created for j in jobs] == [True, False, True]
    assert jobs[1].id == jobs[0].id and jobs[1].existing_spec_differs  # max_urls differs; the spelling does not
    job = (await coord.admin.GetJob(admin_pb2.GetJobRequest(job_id=jobs[0].id))).job
    assert (job.kind, job.target_url) == ("sitemap", "https://shop.example/")


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (jobs_pb2.SitemapSpec(url=""), "jobs[0].sitemap.url"),
        (jobs_pb2.SitemapSpec(url="/sitemap.xml"), "jobs[0].sitemap.url"),
        (jobs_pb2.SitemapSpec(url="ftp://shop.example/sitemap.xml"), "jobs[0].sitemap.url"),
        (jobs_pb2.SitemapSpec(url="https://shop.example/", max_urls=-1), "jobs[0].sitemap.max_urls"),
        (jobs_pb2.SitemapSpec(url="https://shop.example/", max_urls=50_001), "jobs[0].sitemap.max_urls"),
    ],
)
async def test_a_bad_sitemap_spec_is_refused_naming_its_field(
    start_coordinator: StartCoordinator, spec: jobs_pb2.SitemapSpec, field: str
) -> None:
    coord = await start_coordinator()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[jobs_pb2.JobSpec(sitemap=spec)]))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).metadata["field"] == field


async def test_a_full_sitemap_result_is_stored_and_one_past_the_bound_refused(
    start_coordinator: StartCoordinator,
) -> None:
    coord = await start_coordinator()
    specs = [jobs_pb2.JobSpec(sitemap=jobs_pb2.SitemapSpec(url=f"https://shop{n}.example/")) for n in range(2)]
    await coord.queue.Enqueue(pb.EnqueueRequest(jobs=specs))
    full, over = (await coord.queue.Lease(lease_request(worker_id="w-sitemap", max_jobs=2))).jobs

    def result(urls: int) -> jobs_pb2.JobResult:
        entries = [jobs_pb2.SitemapEntry(url=f"https://shop.example/product/{n}") for n in range(urls)]
        return jobs_pb2.JobResult(sitemap=jobs_pb2.SitemapResult(entries=entries, truncated=True))

    refused = pb.CompletedJob(job_id=over.id, lease_token=over.lease_token, result=result(50_001))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coord.queue.Complete(pb.CompleteRequest(jobs=[refused]))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).metadata["field"] == "jobs[0].result.sitemap.entries"

    stored = pb.CompletedJob(job_id=full.id, lease_token=full.lease_token, result=result(50_000))
    await coord.queue.Complete(pb.CompleteRequest(jobs=[stored]))
    job = (await coord.admin.GetJob(admin_pb2.GetJobRequest(job_id=full.id))).job
    assert job.state == jobs_pb2.JOB_STATE_SUCCEEDED and job.result == stored.result
