"""Scrape jobs through the handler with the worker's real pipeline: the guarded fetcher, a real Chromium
and the image pool, against the catalogue site on loopback. No coordinator: `run_scrape` is called as
the worker calls it, and what it returns or raises is what the worker would report."""

from __future__ import annotations

import logging
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from crawlfleet.common.logs import job_log
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.context import JobContext
from crawlfleet.worker.handlers.scrape import run_scrape
from crawlfleet.worker.pipeline.resources import PipelineResources
from crawlfleet.worker.pipeline.settings import ScrapeSettings
from crawlfleet.worker.settings import WorkerSettings
from tests.helpers import seconds
from tests.site import BOMB_BYTES, LocalSite, catalogue_site, compression_bomb

pytestmark = pytest.mark.timeout(120)

CAP = 1024 * 1024
# What a refused bomb may cost a job: the cap it fills, plus a few megabytes of slack.
MEMORY_BOUND = CAP + 4 * 1024 * 1024
SETTINGS = WorkerSettings(
    worker_id="scrape-failures-test",
    scrape=ScrapeSettings(
        allow_loopback=True, max_body_bytes=CAP, max_image_bytes=CAP, browser_settle_timeout=0.2, image_timeout=10
    ),
)


@pytest.fixture(scope="module")
def site() -> Iterator[LocalSite]:
    served = catalogue_site().start()
    yield served
    served.stop()


@pytest.fixture(scope="module")
async def resources() -> AsyncIterator[PipelineResources]:
    shared = PipelineResources(SETTINGS.scrape, slots=2)
    yield shared
    await shared.aclose()


@pytest.fixture(scope="module")
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as pool:
        yield pool


async def scrape(
    resources: PipelineResources,
    executor: ThreadPoolExecutor,
    url: str,
    render: jobs_pb2.RenderMode.ValueType = jobs_pb2.RENDER_MODE_HTTP,
    *,
    timeout: float = 10.0,
    skip_images: bool = True,
) -> jobs_pb2.ScrapeResult:
    """One scrape job, handled as the worker handles it."""
    spec = jobs_pb2.ScrapeSpec(url=url, render=render, timeout=seconds(timeout), skip_images=skip_images)
    job = pb.LeasedJob(id=1, kind="scrape", attempt=1, spec=jobs_pb2.JobSpec(scrape=spec))
    log = job_log(logging.getLogger("crawlfleet.test"), job)
    ctx = JobContext(settings=SETTINGS, resources=resources, log=log, executor=executor)
    return (await run_scrape(job, ctx)).scrape


async def test_an_image_bomb_is_refused_in_bounded_memory(
    resources: PipelineResources, executor: ThreadPoolExecutor, site: LocalSite
) -> None:
    compression_bomb(BOMB_BYTES, "gzip")  # built before measuring: the server's bytes are not the worker's
    tracemalloc.start()
    try:
        result = await scrape(resources, executor, site.url("/bomb-gallery"), skip_images=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    images = {image.url.removeprefix(site.base): image for image in result.images}
    assert images["/img/gzip-bomb.jpg"].error_type == "body_too_large"
    assert images["/img/photo.jpg"].format == "JPEG"
    assert peak < MEMORY_BOUND, f"peak {peak / 2**20:.1f} MiB while refusing a {BOMB_BYTES >> 20} MiB image bomb"
