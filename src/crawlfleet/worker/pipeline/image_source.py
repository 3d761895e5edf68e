"""Where a page's image comes from: the worker's cache by URL, a revalidation, or a download.

The same image URL on many pages (a shop's logo, a product shot on every listing) is downloaded
and processed once per worker while it stays fresh (``freshness``: the server's Cache-Control or
Expires, at most ``--image-cache-ttl``). Once stale, it is revalidated with the validators it came
with (If-None-Match, If-Modified-Since): a 304 reuses what the worker has, anything else is a new
download. Concurrent pages asking for one URL share one download. Processed images are kept by the
SHA-256 of their bytes (``ProcessedImageCache``), so two URLs serving the same bytes share one too;
bytes this worker has not processed are first looked up in the fleet's image index
(``image_index``): what another worker processed and the coordinator stored is not processed again.

Failures are not kept: the next page listing a URL that failed asks its server again. Every
download and revalidation goes through the worker's guarded fetcher (egress guard, size cap,
timeout); a reuse makes no connection at all.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from crawlfleet.worker.pipeline.fetch import FetchedResponse, GuardedFetcher
from crawlfleet.worker.pipeline.freshness import reuse_lifetime
from crawlfleet.worker.pipeline.image_cache import ProcessedImageCache
from crawlfleet.worker.pipeline.image_index import FleetImageIndex
from crawlfleet.worker.pipeline.images import ImageError, ImageProcessor, ProcessedImage

# URLs remembered at most; an entry is a few hundred bytes, the thumbnails live in the content cache.
DEFAULT_MAX_URLS = 20_000
# The response headers freshness is computed from: a 304 updates them (RFC 9111, section 4.3.4).
_KEPT_HEADERS = ("cache-control", "expires", "date", "etag", "last-modified")


@dataclass(frozen=True, kw_only=True)
class _KnownUrl:
    """What the URL's last download gave, and until when it may be reused without asking."""

    content_key: str
    fresh_until: float  # on the monotonic clock
    headers: dict[str, str]  # _KEPT_HEADERS, lower-case names

    def validators(self) -> dict[str, str]:
        asked = {"If-None-Match": self.headers.get("etag"), "If-Modified-Since": self.headers.get("last-modified")}
        return {name: value for name, value in asked.items() if value}


class ImageSource:
    """Processed images by URL, downloaded, revalidated or reused as their freshness says.

    ``image`` raises ``ImageError`` (the bytes, or a status other than 200) or ``FetchError``.
    ``counts`` has how many images were ``reused``, ``revalidated`` (a 304) and ``downloaded``, and
    of those downloaded how many were ``found_stored`` in the fleet's index; ``processed`` how many
    this worker processed.
    """

    def __init__(
        self,
        fetcher: GuardedFetcher,
        processor: ImageProcessor,
        *,
        max_bytes: int,
        timeout: float,
        ttl: float,
        cache_bytes: int,
        max_urls: int = DEFAULT_MAX_URLS,
        index: FleetImageIndex | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetcher = fetcher
        self._processor = processor
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._ttl = ttl
        self._content = ProcessedImageCache(cache_bytes)
        self._urls: OrderedDict[str, _KnownUrl] = OrderedDict()
        self._max_urls = max_urls
        self._index = index
        self._loading: dict[str, asyncio.Future[ProcessedImage]] = {}
        self._clock = clock
        self._wall_clock = wall_clock
        self.counts: Counter[str] = Counter()
        self.processed = 0  # images handed to the processor

    async def image(self, url: str) -> ProcessedImage:
        """The processed image at url; one download at a time per URL, shared by its callers."""
        loading = self._loading.get(url)
        if loading is None:
            loading = asyncio.ensure_future(self._load(url))
            self._loading[url] = loading
            loading.add_done_callback(lambda done: self._loaded(url, done))
        # A caller that gives up (its job cancelled) leaves the download to the others.
        return await asyncio.shield(loading)

    def _loaded(self, url: str, done: asyncio.Future[ProcessedImage]) -> None:
        if self._loading.get(url) is done:
            del self._loading[url]
        if not done.cancelled():
            done.exception()  # retrieved here: every caller may have gone

    async def _load(self, url: str) -> ProcessedImage:
        known = self._urls.get(url)
        kept = self._content.get(known.content_key) if known is not None else None
        if known is not None and kept is not None and self._clock() < known.fresh_until:
            self._urls.move_to_end(url)
            self.counts["reused"] += 1
            return kept
        ask = known.validators() if known is not None and kept is not None else {}
        fetched = await self._fetcher.get(url, max_bytes=self._max_bytes, timeout=self._timeout, headers=ask or None)
        if fetched.status == 304 and ask and known is not None and kept is not None:
            self._remember(url, known.content_key, fetched, previous=known)
            self.counts["revalidated"] += 1
            return kept
        if fetched.status != 200:
            self._urls.pop(url, None)
            raise ImageError(f"http_{fetched.status}", f"HTTP {fetched.status} from {url}")
        key = self._content.key(fetched.body)
        processed = self._content.get(key)
        if processed is None:
            processed = await self._stored_or_processed(key, fetched.body)
            self._content.put(key, processed)
        self._remember(url, key, fetched)
        self.counts["downloaded"] += 1
        return processed

    async def _stored_or_processed(self, key: str, body: bytes) -> ProcessedImage:
        """Bytes this worker has not processed: as the fleet's index has them stored, else processed here."""
        if self._index is not None:
            stored = await self._index.find(key)
            if stored is not None:
                self.counts["found_stored"] += 1
                return stored
        self.processed += 1
        return await self._processor.process(body)

    def forget(self, sha256s: Iterable[str]) -> None:
        """Drops what this worker holds of these images without their thumbnails' bytes (what the
        fleet's index gave): the next page showing one downloads and processes it again."""
        dropped = {sha256 for sha256 in sha256s if self._content.drop_without_data(sha256)}
        for url in [url for url, known in self._urls.items() if known.content_key in dropped]:
            del self._urls[url]

    def _remember(self, url: str, key: str, fetched: FetchedResponse, previous: _KnownUrl | None = None) -> None:
        # A 304 sends what changed: the headers it leaves out keep their stored values.
        headers = dict(previous.headers) if previous is not None else {}
        headers.update((name, fetched.headers[name]) for name in _KEPT_HEADERS if name in fetched.headers)
        lifetime = reuse_lifetime(headers, now=self._wall_clock(), cap=self._ttl)
        if lifetime is None:
            self._urls.pop(url, None)
            return
        self._urls[url] = _KnownUrl(content_key=key, fresh_until=self._clock() + lifetime, headers=headers)
        self._urls.move_to_end(url)
        while len(self._urls) > self._max_urls:
            self._urls.popitem(last=False)
