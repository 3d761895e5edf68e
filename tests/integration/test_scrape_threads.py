"""Which work of a scrape leaves the event loop: a small page is hashed and extracted on it (a thread
hop costs more than the work), a large one in the worker's threads, so heartbeats never wait on it.
Through the handler with the worker's real pipeline, against a loopback site."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import pytest

from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.handlers.scrape import INLINE_HASH_BYTES, INLINE_HTML_CHARS
from crawlfleet.worker.pipeline.resources import PipelineResources
from crawlfleet.worker.pipeline.settings import ScrapeSettings
from crawlfleet.worker.settings import WorkerSettings
from tests.helpers import seconds
from tests.scrape_jobs import pipeline, scrape_as_worker
from tests.site import LocalSite, html, page

pytestmark = pytest.mark.timeout(60)

_P = ParamSpec("_P")
_T = TypeVar("_T")

SETTINGS = WorkerSettings(worker_id="scrape-threads-test", scrape=ScrapeSettings(allow_loopback=True))
SMALL = html("Small", "<p>" + "a small page " * 100 + "</p>")
# Past the inline bound for extraction, within it for hashing.
LARGE_TEXT = html("Large", "<p>" + "a large page " * (INLINE_HTML_CHARS // 10) + "</p>")
# Past both bounds.
HUGE = html("Huge", "<p>" + "a huge page " * (INLINE_HASH_BYTES // 10) + "</p>")


class CountingExecutor(ThreadPoolExecutor):
    """A thread pool that names each function handed to it."""

    def __init__(self) -> None:
        super().__init__(2)
        self.ran: list[str] = []

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        self.ran.append(getattr(getattr(fn, "func", fn), "__name__", repr(fn)))
        return super().submit(fn, *args, **kwargs)


@pytest.fixture(scope="module")
def site() -> Iterator[LocalSite]:
    served = LocalSite(routes={"/small": page(SMALL), "/large": page(LARGE_TEXT), "/huge": page(HUGE)}).start()
    yield served
    served.stop()


@pytest.fixture(scope="module")
async def resources() -> AsyncIterator[PipelineResources]:
    async with pipeline(SETTINGS) as shared:
        yield shared


@pytest.mark.parametrize(
    ("path", "body", "in_threads"),
    [
        ("/small", SMALL, []),
        ("/large", LARGE_TEXT, ["extract_page"]),
        ("/huge", HUGE, ["sha256_hex", "extract_page"]),
    ],
)
async def test_only_large_pages_are_hashed_and_extracted_in_threads(
    resources: PipelineResources, site: LocalSite, path: str, body: bytes, in_threads: list[str]
) -> None:
    spec = jobs_pb2.ScrapeSpec(url=site.url(path), timeout=seconds(20), skip_images=True)
    with CountingExecutor() as executor:
        result = await scrape_as_worker(SETTINGS, resources, executor, spec)
    assert executor.ran == in_threads
    assert result.content_sha256 == hashlib.sha256(body).hexdigest()
    assert result.title == path.strip("/").capitalize()
