"""Declared fields, follow selectors, conditional GET and content hashes through the scrape handler
with the worker's real pipeline (guarded fetcher, Chromium, image pool) against a loopback site that
honours If-None-Match and If-Modified-Since. No coordinator: `run_scrape` is called as the worker
calls it."""

from __future__ import annotations

import hashlib
import json
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
from tests.site import PHOTO_JPEG, LocalSite, Response, blob, html, redirect

pytestmark = pytest.mark.timeout(120)
needs_chromium = pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed")

SETTINGS = WorkerSettings(
    worker_id="scrape-changes-test",
    scrape=ScrapeSettings(allow_loopback=True, browser_settle_timeout=0.2, image_timeout=10),
)
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
HTTP, BROWSER, AUTO = jobs_pb2.RENDER_MODE_HTTP, jobs_pb2.RENDER_MODE_BROWSER, jobs_pb2.RENDER_MODE_AUTO
FIELDS = [
    jobs_pb2.FieldSpec(name="title", css="h1"),
    jobs_pb2.FieldSpec(name="price", json_ld="offers.price"),
    jobs_pb2.FieldSpec(name="tags", css="ul.tags li", all=True),
    jobs_pb2.FieldSpec(name="photo", css="img.main", attribute="src"),
]


class ProductSite(LocalSite):
    """A product page whose content (and ETag) changes with `version`, and a redirect to it."""

    def __init__(self) -> None:
        super().__init__()
        self.version = 1
        self.routes.update(
            {
                "/product": self.product,
                "/old-product": redirect("/product", 301),
                "/img/photo.jpg": blob(PHOTO_JPEG, "image/jpeg"),
            }
        )

    def body(self) -> bytes:
        offer = {"@context": "https://schema.org", "@type": "Product", "offers": {"price": 10 + self.version}}
        head = f'<script type="application/ld+json">{json.dumps(offer)}</script>'
        main = (
            f"<h1>Teapot, edition {self.version}</h1><ul class=tags><li>blue</li><li>four cups</li></ul>"
            "<img class=main src='/img/photo.jpg'><div class=products><a href='/p/1'>One</a></div>"
            "<footer><a href='/about'>About</a></footer>"
        )
        return html("Teapot", main, head)

    def product(self) -> Response:
        headers = {
            "Content-Type": "text/html; charset=utf-8",
            "ETag": f'"v{self.version}"',
            "Last-Modified": LAST_MODIFIED,
        }
        return 200, headers, self.body()


@pytest.fixture
def site() -> Iterator[ProductSite]:
    served = ProductSite()
    served.start()
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
    resources: PipelineResources, executor: ThreadPoolExecutor, spec: jobs_pb2.ScrapeSpec
) -> jobs_pb2.ScrapeResult:
    spec.timeout.CopyFrom(seconds(30))
    job = pb.LeasedJob(id=1, kind="scrape", attempt=1, spec=jobs_pb2.JobSpec(scrape=spec))
    ctx = JobContext(
        settings=SETTINGS,
        resources=resources,
        log=job_log(logging.getLogger("crawlfleet.test"), job),
        executor=executor,
    )
    return (await run_scrape(job, ctx)).scrape


def values(result: jobs_pb2.ScrapeResult) -> dict[str, list[str]]:
    return {field.name: list(field.values) for field in result.fields}


@pytest.mark.parametrize("render", [HTTP, pytest.param(BROWSER, marks=needs_chromium)], ids=["http", "browser"])
async def test_fields_followed_links_and_content_hash(
    resources: PipelineResources, executor: ThreadPoolExecutor, site: ProductSite, render: jobs_pb2.RenderMode.ValueType
) -> None:
    spec = jobs_pb2.ScrapeSpec(
        url=site.url("/product"), render=render, fields=FIELDS, follow_selectors=[".products"], skip_images=True
    )
    result = await scrape(resources, executor, spec)
    assert values(result) == {
        "title": ["Teapot, edition 1"],
        "price": ["11"],
        "tags": ["blue", "four cups"],
        "photo": ["/img/photo.jpg"],
    }
    assert {link.url.removeprefix(site.base): link.followed for link in result.links} == {"/p/1": True, "/about": False}
    # The decoded body: for a render, the document's response as the browser got it.
    assert result.content_sha256 == hashlib.sha256(site.body()).hexdigest()
    assert not result.not_modified and result.status_code == 200


@pytest.mark.parametrize(
    "render", [HTTP, AUTO, pytest.param(BROWSER, marks=needs_chromium)], ids=["http", "auto", "browser"]
)
async def test_a_304_completes_as_not_modified_without_extraction_or_images(
    resources: PipelineResources, executor: ThreadPoolExecutor, site: ProductSite, render: jobs_pb2.RenderMode.ValueType
) -> None:
    spec = jobs_pb2.ScrapeSpec(url=site.url("/product"), render=render, fields=FIELDS, if_none_match='"v1"')
    result = await scrape(resources, executor, spec)
    assert result.not_modified and result.status_code == 304
    assert result.headers["etag"] == '"v1"'
    assert not result.fields and not result.images and not result.links and not result.content_sha256
    assert site.hits["/product"] == 1 and site.hits["/img/photo.jpg"] == 0  # no image work


async def test_if_modified_since_and_redirects_before_the_304(
    resources: PipelineResources, executor: ThreadPoolExecutor, site: ProductSite
) -> None:
    spec = jobs_pb2.ScrapeSpec(url=site.url("/old-product"), if_modified_since=LAST_MODIFIED)
    result = await scrape(resources, executor, spec)
    assert result.not_modified and result.final_url == site.url("/product")
    assert [(r.url, r.status_code) for r in result.redirects] == [(site.url("/old-product"), 301)]
    assert site.hits["/img/photo.jpg"] == 0


async def test_a_changed_page_is_fetched_in_full_with_a_new_content_hash(
    resources: PipelineResources, executor: ThreadPoolExecutor, site: ProductSite
) -> None:
    first = await scrape(resources, executor, jobs_pb2.ScrapeSpec(url=site.url("/product"), fields=FIELDS))
    assert first.headers["etag"] == '"v1"' and site.hits["/img/photo.jpg"] == 1
    site.version = 2
    spec = jobs_pb2.ScrapeSpec(
        url=site.url("/product"), fields=FIELDS, if_none_match=first.headers["etag"], if_modified_since=LAST_MODIFIED
    )
    second = await scrape(resources, executor, spec)
    assert not second.not_modified and second.status_code == 200
    assert second.content_sha256 != first.content_sha256 and second.headers["etag"] == '"v2"'
    assert values(second)["title"] == ["Teapot, edition 2"] and values(second)["price"] == ["12"]
    assert [image.format for image in second.images] == ["JPEG"]
