"""`render=auto` renders a page that needs JavaScript without requesting it again: the browser is
served the response the HTTP fetch already has, unless the server said another request may get
another answer (`Vary`). Through the handler with the worker's real pipeline (guarded fetcher, real
Chromium), against a loopback site that counts the requests of each path."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.pipeline.chromium import find_chromium
from crawlfleet.worker.pipeline.resources import PipelineResources
from crawlfleet.worker.pipeline.settings import ScrapeSettings
from crawlfleet.worker.settings import WorkerSettings
from tests.helpers import seconds
from tests.scrape_jobs import pipeline, scrape_as_worker
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
    async with pipeline(SETTINGS) as shared:
        yield shared


@pytest.mark.parametrize(
    ("path", "render", "requests"),
    [
        ("/app", jobs_pb2.RENDER_MODE_AUTO, 1),
        ("/app-gzip-vary", jobs_pb2.RENDER_MODE_AUTO, 1),
        ("/app-vary-accept", jobs_pb2.RENDER_MODE_AUTO, 2),  # the browser's request may get another answer
        ("/app", jobs_pb2.RENDER_MODE_BROWSER, 1),  # nothing fetched before: the browser fetches it
    ],
    ids=["auto", "auto-vary-accept-encoding", "auto-vary-accept", "browser"],
)
async def test_a_page_rendered_in_the_browser_is_requested_once_where_its_answer_cannot_differ(
    resources: PipelineResources, site: LocalSite, path: str, render: jobs_pb2.RenderMode.ValueType, requests: int
) -> None:
    before = site.hits.copy()
    spec = jobs_pb2.ScrapeSpec(url=site.url(path), render=render, timeout=seconds(20), skip_images=True)
    with ThreadPoolExecutor(2) as executor:
        result = await scrape_as_worker(SETTINGS, resources, executor, spec)
    assert result.rendered_with == jobs_pb2.RENDER_MODE_BROWSER
    assert "built by script: api data" in result.main_text
    assert site.hits[path] - before[path] == requests
    assert site.hits["/api"] - before["/api"] == 1  # the page's own requests still go out, through the guard
    assert result.content_sha256 == hashlib.sha256(APP).hexdigest()


async def test_the_browser_gets_the_documents_headers(resources: PipelineResources, site: LocalSite) -> None:
    spec = jobs_pb2.ScrapeSpec(url=site.url("/app"), render=jobs_pb2.RENDER_MODE_AUTO, skip_images=True)
    with ThreadPoolExecutor(2) as executor:
        result = await scrape_as_worker(SETTINGS, resources, executor, spec)
    assert "session=from-the-document" in result.main_text
