"""The worker's image source against a real HTTP server on loopback and a real image pool: an image
URL is downloaded once while fresh, revalidated with its validators once stale, downloaded again
when it changed, shared by concurrent callers, and never kept when it failed or said no-store."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest

from crawlfleet.worker.pipeline.egress import EgressPolicy
from crawlfleet.worker.pipeline.fetch import FetchError, GuardedFetcher
from crawlfleet.worker.pipeline.image_source import ImageSource
from crawlfleet.worker.pipeline.images import ImageError, ImageOptions, ImageProcessor
from tests.helpers import QuietHandler, serving
from tests.site import make_image

pytestmark = pytest.mark.timeout(60)

RED = make_image("PNG", color=(200, 40, 40))
BLUE = make_image("PNG", color=(40, 40, 200))
TTL = 600.0


@dataclass
class Served:
    body: bytes
    headers: dict[str, str]
    status: int = 200


@dataclass
class ImageSite:
    """Serves `files` by path and logs every request with the validators it carried; a request
    whose If-None-Match is the file's ETag gets a 304."""

    files: dict[str, Served] = field(default_factory=dict)
    log: list[tuple[str, str | None]] = field(default_factory=list)
    base: str = ""

    def handler(self) -> type[QuietHandler]:
        site = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                asked = self.headers.get("If-None-Match")
                site.log.append((self.path, asked))
                served = site.files.get(self.path, Served(b"", {}, 404))
                etag = served.headers.get("ETag")
                status, body = (304, b"") if asked is not None and asked == etag else (served.status, served.body)
                self.send_response(status)
                for name, value in served.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def requests(self, path: str) -> list[str | None]:
        return [asked for logged, asked in self.log if logged == path]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def site() -> Iterator[ImageSite]:
    site = ImageSite()
    with serving(site.handler()) as site.base:
        yield site


@pytest.fixture(scope="module")
async def processor() -> AsyncIterator[ImageProcessor]:
    async with ImageProcessor(ImageOptions(), workers=1) as images:
        yield images


@pytest.fixture
async def fetcher() -> AsyncIterator[GuardedFetcher]:
    fetcher = GuardedFetcher(EgressPolicy.from_settings(allow_loopback=True), user_agent="test", max_connections=8)
    yield fetcher
    await fetcher.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def source(fetcher: GuardedFetcher, processor: ImageProcessor, clock: Clock) -> ImageSource:
    return ImageSource(fetcher, processor, max_bytes=1 << 20, timeout=10, ttl=TTL, cache_bytes=1 << 20, clock=clock)


def serve(site: ImageSite, path: str, body: bytes, **headers: str) -> str:
    site.files[path] = Served(
        body, {"Content-Type": "image/png", **{k.replace("_", "-"): v for k, v in headers.items()}}
    )
    return site.base + path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_a_fresh_image_is_reused_without_a_request(site: ImageSite, source: ImageSource, clock: Clock) -> None:
    url = serve(site, "/fresh.png", RED, Cache_Control="max-age=60")
    first = await source.image(url)
    clock.now += 59
    again = await source.image(url)
    assert again == first and first.sha256 == sha(RED) and first.thumbnails
    assert site.requests("/fresh.png") == [None]
    assert source.counts == {"downloaded": 1, "reused": 1}


async def test_a_stale_image_is_revalidated_and_a_304_reuses_it(
    site: ImageSite, source: ImageSource, clock: Clock
) -> None:
    url = serve(site, "/etag.png", RED, Cache_Control="max-age=60", ETag='"v1"')
    first = await source.image(url)
    clock.now += 61
    assert await source.image(url) == first
    assert site.requests("/etag.png") == [None, '"v1"']
    assert source.counts == {"downloaded": 1, "revalidated": 1}
    clock.now += 30  # the 304 made it fresh again
    await source.image(url)
    assert len(site.requests("/etag.png")) == 2


async def test_a_changed_image_is_downloaded_again(site: ImageSite, source: ImageSource, clock: Clock) -> None:
    url = serve(site, "/changes.png", RED, Cache_Control="max-age=60", ETag='"v1"')
    assert (await source.image(url)).sha256 == sha(RED)
    serve(site, "/changes.png", BLUE, Cache_Control="max-age=60", ETag='"v2"')
    clock.now += 61
    assert (await source.image(url)).sha256 == sha(BLUE)
    assert site.requests("/changes.png") == [None, '"v1"']


async def test_the_worker_bound_caps_a_long_lifetime(site: ImageSite, source: ImageSource, clock: Clock) -> None:
    url = serve(site, "/year.png", RED, Cache_Control="max-age=31536000")
    await source.image(url)
    clock.now += TTL + 1
    await source.image(url)
    assert site.requests("/year.png") == [None, None]  # no validators: a plain download


@pytest.mark.parametrize("cache_control", ["no-store", "no-cache"])
async def test_no_store_and_no_cache_ask_the_server_every_time(
    site: ImageSite, source: ImageSource, cache_control: str
) -> None:
    url = serve(site, f"/{cache_control}.png", RED, Cache_Control=cache_control)
    first = await source.image(url)
    assert await source.image(url) == first
    assert len(site.requests(f"/{cache_control}.png")) == 2


async def test_concurrent_pages_share_one_download(site: ImageSite, source: ImageSource) -> None:
    url = serve(site, "/shared.png", RED, Cache_Control="max-age=60")
    results = await asyncio.gather(*(source.image(url) for _ in range(5)))
    assert {r.sha256 for r in results} == {sha(RED)}
    assert len(site.requests("/shared.png")) == 1


async def test_failures_are_not_kept(site: ImageSite, source: ImageSource) -> None:
    corrupt = serve(site, "/corrupt.png", RED[:40], Cache_Control="max-age=60")
    for _ in range(2):
        with pytest.raises(ImageError) as caught:
            await source.image(corrupt)
        assert caught.value.error_type == "corrupt_image"
    assert len(site.requests("/corrupt.png")) == 2
    missing = site.base + "/missing.png"
    with pytest.raises(ImageError) as caught:
        await source.image(missing)
    assert caught.value.error_type == "http_404"
    serve(site, "/missing.png", RED)
    assert (await source.image(missing)).sha256 == sha(RED)


async def test_a_cached_image_stays_behind_the_egress_guard(
    site: ImageSite, processor: ImageProcessor, source: ImageSource
) -> None:
    """A worker whose guard refuses loopback gets nothing from the site, however the cache is used."""
    url = serve(site, "/guarded.png", RED, Cache_Control="max-age=60")
    await source.image(url)  # cached by another source: caches are per worker, never shared
    guarded = GuardedFetcher(EgressPolicy.from_settings(allow_loopback=False), user_agent="t", max_connections=1)
    try:
        strict = ImageSource(guarded, processor, max_bytes=1 << 20, timeout=10, ttl=TTL, cache_bytes=1 << 20)
        with pytest.raises(FetchError) as caught:
            await strict.image(url)
        assert caught.value.error_type == "blocked_destination"
    finally:
        await guarded.aclose()
    assert len(site.requests("/guarded.png")) == 1


async def test_the_size_cap_holds(site: ImageSite, fetcher: GuardedFetcher, processor: ImageProcessor) -> None:
    url = serve(site, "/big.png", RED, Cache_Control="max-age=60")
    small = ImageSource(fetcher, processor, max_bytes=len(RED) - 1, timeout=10, ttl=TTL, cache_bytes=1 << 20)
    with pytest.raises(FetchError) as caught:
        await small.image(url)
    assert caught.value.error_type == "body_too_large"
