"""Scrape jobs through the handler with the worker's real pipeline: the guarded fetcher, a real Chromium
and the image pool, against the catalogue site on loopback. No coordinator: `run_scrape` is called as
the worker calls it, and what it returns or raises is what the worker would report."""

from __future__ import annotations

import logging
import socket
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from crawlfleet.common.logs import job_log
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.context import JobContext
from crawlfleet.worker.errors import JobError
from crawlfleet.worker.handlers.scrape import run_scrape
from crawlfleet.worker.pipeline.resources import PipelineResources
from crawlfleet.worker.pipeline.settings import MAX_REDIRECTS, ScrapeSettings
from crawlfleet.worker.settings import WorkerSettings
from tests.certs import make_pki
from tests.helpers import seconds
from tests.site import BOMB_BYTES, LocalSite, catalogue_site, compression_bomb, html, page

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


@dataclass(frozen=True)
class Targets:
    """Where each failure lives: the catalogue site, an HTTPS site the worker does not trust, a port
    nothing listens on."""

    site: LocalSite
    untrusted: LocalSite
    closed_port: int

    def url(self, target: str) -> str:
        if target == "untrusted":
            return self.untrusted.url("/")
        if target == "closed":
            return f"http://127.0.0.1:{self.closed_port}/"
        return self.site.url(target) if target.startswith("/") else target


@pytest.fixture(scope="module")
def targets(site: LocalSite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    pki = make_pki(tmp_path_factory.mktemp("pki"))  # a CA the worker does not trust
    untrusted = LocalSite(routes={"/": page(html("Secure", "hello"))}).start(tls=(pki.server_cert, pki.server_key))
    with socket.socket() as bound_not_listening:  # connections are refused; no other test can take the port
        bound_not_listening.bind(("127.0.0.1", 0))
        yield Targets(site, untrusted, bound_not_listening.getsockname()[1])
    untrusted.stop()


# target, (error_type, retryable, retry_after); the blocked and unresolvable ones never leave the machine.
FAILURES = {
    "/missing": ("http_4xx", False, None),
    "/gone": ("http_4xx", False, None),
    "/error": ("http_5xx", True, None),
    "/overloaded": ("http_5xx", True, 30.0),
    "/busy": ("http_429", True, 120.0),
    "/loop": ("too_many_redirects", False, None),
    "/hop/0": ("too_many_redirects", False, None),
    "/download": ("non_html", False, None),
    "/report.pdf": ("non_html", False, None),
    "/huge": ("body_too_large", False, None),
    "/gzip-bomb": ("body_too_large", False, None),
    "/to-metadata": ("blocked_destination", False, None),
    "http://10.0.0.1/": ("blocked_destination", False, None),
    "http://no-such-host.invalid/": ("dns_error", True, None),
    "/slow": ("timeout", True, None),
    "closed": ("connection_refused", True, None),
    "untrusted": ("tls_error", False, None),
}
RENDERS = {"http": jobs_pb2.RENDER_MODE_HTTP, "browser": jobs_pb2.RENDER_MODE_BROWSER}


@pytest.mark.parametrize("render", list(RENDERS))
@pytest.mark.parametrize("target", list(FAILURES))
async def test_each_failure_class_is_the_same_over_http_and_in_the_browser(
    resources: PipelineResources, executor: ThreadPoolExecutor, targets: Targets, target: str, render: str
) -> None:
    timeout = 1.0 if target == "/slow" else 10.0
    with pytest.raises(JobError) as caught:
        await scrape(resources, executor, targets.url(target), RENDERS[render], timeout=timeout)
    failure = caught.value
    assert (failure.error_type, failure.retryable, failure.retry_after) == FAILURES[target], failure.message


@pytest.mark.parametrize("render", list(RENDERS))
async def test_a_redirect_loop_costs_the_same_requests_either_way(
    resources: PipelineResources, executor: ThreadPoolExecutor, site: LocalSite, render: str
) -> None:
    before = site.hits["/loop"]
    with pytest.raises(JobError):
        await scrape(resources, executor, site.url("/loop"), RENDERS[render])
    assert site.hits["/loop"] - before == MAX_REDIRECTS + 1


@pytest.mark.parametrize("render", list(RENDERS))
@pytest.mark.parametrize(
    ("path", "redirects"),
    [("/hop/1", MAX_REDIRECTS), ("/attachment", 0)],
    ids=["max-redirects", "html-sent-as-attachment"],
)
async def test_pages_within_the_limits_succeed_either_way(
    resources: PipelineResources, executor: ThreadPoolExecutor, site: LocalSite, path: str, redirects: int, render: str
) -> None:
    result = await scrape(resources, executor, site.url(path), RENDERS[render])
    assert result.status_code == 200
    assert len(result.redirects) == redirects
