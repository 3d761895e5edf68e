"""`render=auto` renders a page that needs JavaScript without requesting it again: the browser is
served the response the HTTP fetch already has, unless the server said another request may get
another answer (`Vary`). Through the handler with the worker's real pipeline (guarded fetcher, real
Chromium), against a loopback site that counts the requests of each path."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from crawlfleet.common.logs import job_log
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.context import JobContext
from crawlfleet.worker.handlers.scrape import run_scrape
from crawlfleet.worker.pipeline.chromium import find_chromium
from crawlfleet.worker.pipeline.resources import PipelineResources
from crawlfleet.worker.pipeline.settings import ScrapeSettings
from crawlfleet.worker.settings import WorkerSettings
from tests.helpers import seconds
from tests.site import LocalSite, html, page

pytestmark = [
    pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed (playwright install chromium)"),
    pytest.mark.timeout(120),
]

SETTINGS = WorkerSettings(
    worker_id="auto-render-test", scrape=ScrapeSettings(allow_loopback=True, browser_settle_timeout=0.5)
)
# An app shell: no text until its script runs; the script shows the cookie the document's response
# set (so the browser got that response's headers too) and what an API answered (fetched by the page).
APP = html(
    "App",
    "<div id=root></div><script>"
    "fetch('/api').then(r => r.text()).then(t => {"
    " document.getElementById('root').textContent = 'built by script: ' + t + ' / ' + document.cookie; });"
    "</script>",
)
ROUTES = {
    "/app": lambda: (200, {"Content-Type": "text/html", "Set-Cookie": "session=from-the-document; Path=/"}, APP),
    "/app-gzip-vary": page(APP, Vary="Accept-Encoding"),
    "/app-vary-accept": page(APP, Vary="Accept"),
    "/api": page(b"api data"),
}


@pytest.fixture(scope="module")
def site() -> Iterator[LocalSite]:
    served = LocalSite(routes=dict(ROUTES)).start()
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
    resources: PipelineResources, executor: ThreadPoolExecutor, url: str, render: jobs_pb2.RenderMode.ValueType
) -> jobs_pb2.ScrapeResult:
    spec = jobs_pb2.ScrapeSpec(url=url, render=render, timeout=seconds(20), skip_images=True)
    job = pb.LeasedJob(id=1, kind="scrape", attempt=1, spec=jobs_pb2.JobSpec(scrape=spec))
    log = job_log(logging.getLogger("crawlfleet.test"), job)
    ctx = JobContext(settings=SETTINGS, resources=resources, log=log, executor=executor)
    return (await run_scrape(job, ctx)).scrape


@pytest.mark.parametrize("path", ["/app", "/app-gzip-vary"])
async def test_an_escalated_page_is_requested_once(
    resources: PipelineResources, executor: ThreadPoolExecutor, site: LocalSite, path: str
) -> None:
    before = site.hits.copy()
    result = await scrape(resources, executor, site.url(path), jobs_pb2.RENDER_MODE_AUTO)
    assert result.rendered_with == jobs_pb2.RENDER_MODE_BROWSER
    assert "built by script: api data" in result.main_text
    assert site.hits[path] - before[path] == 1
    assert site.hits["/api"] - before["/api"] == 1  # the page's own requests still go out, through the guard
    assert result.content_sha256 == hashlib.sha256(APP).hexdigest()


async def test_the_browser_gets_the_documents_headers(
    resources: PipelineResources, executor: ThreadPoolExecutor, site: LocalSite
) -> None:
    result = await scrape(resources, executor, site.url("/app"), jobs_pb2.RENDER_MODE_AUTO)
    assert "session=from-the-document" in result.main_text


async def test_a_page_that_varies_on_what_the_browser_sends_is_fetched_again(
    resources: PipelineResources, executor: ThreadPoolExecutor, site: LocalSite
) -> None:
    before = site.hits["/app-vary-accept"]
    result = await scrape(resources, executor, site.url("/app-vary-accept"), jobs_pb2.RENDER_MODE_AUTO)
    assert "built by script: api data" in result.main_text
    assert site.hits["/app-vary-accept"] - before == 2


async def test_a_browser_job_fetches_its_document_itself(
    resources: PipelineResources, executor: ThreadPoolExecutor, site: LocalSite
) -> None:
    before = site.hits["/app"]
    result = await scrape(resources, executor, site.url("/app"), jobs_pb2.RENDER_MODE_BROWSER)
    assert "built by script: api data" in result.main_text
    assert site.hits["/app"] - before == 1
