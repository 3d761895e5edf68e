"""What the scrape pipeline shares across the jobs of one worker: the guarded HTTP client, the
browser pool, the image processor and the images it has processed (by URL and by content). Each is
made, and its modules imported, on first use: a worker that runs only no-op jobs never loads the
HTTP client, the browser driver or the image codecs (a third of a second of CPU at start-up), and
one that never renders or sees an image never starts the browser or the image pool."""

from __future__ import annotations

import asyncio
from functools import cached_property
from typing import TYPE_CHECKING

from crawlfleet.worker.metrics import StageTimer
from crawlfleet.worker.pipeline.settings import ScrapeSettings

if TYPE_CHECKING:
    from crawlfleet.worker.pipeline.browser import BrowserPool
    from crawlfleet.worker.pipeline.egress import EgressPolicy
    from crawlfleet.worker.pipeline.fetch import GuardedFetcher
    from crawlfleet.worker.pipeline.image_index import Finder, FleetImageIndex
    from crawlfleet.worker.pipeline.image_source import ImageSource
    from crawlfleet.worker.pipeline.images import ImageOptions, ImageProcessor


class PipelineResources:
    def __init__(
        self,
        settings: ScrapeSettings,
        *,
        slots: int,
        stages: StageTimer | None = None,
        find_stored_images: Finder | None = None,
    ) -> None:
        self.settings = settings
        self._find_stored_images = find_stored_images
        self._slots = slots
        # Where the pipeline times its stages (the worker's metrics); nowhere when not given.
        self.stages = stages or StageTimer.unregistered()

    @cached_property
    def policy(self) -> EgressPolicy:
        from crawlfleet.worker.pipeline.egress import EgressPolicy

        settings = self.settings
        return EgressPolicy.from_settings(allow_loopback=settings.allow_loopback, allow=settings.egress_allow)

    @cached_property
    def fetcher(self) -> GuardedFetcher:
        from crawlfleet.worker.pipeline.fetch import GuardedFetcher

        return GuardedFetcher(self.policy, user_agent=self.settings.user_agent, max_connections=self._slots * 4)

    @cached_property
    def browser(self) -> BrowserPool:
        from crawlfleet.worker.pipeline.browser import BrowserOptions, BrowserPool

        settings = self.settings
        return BrowserPool(
            BrowserOptions(
                executable=settings.browser_executable,
                pages_per_browser=settings.browser_pages_per_browser,
                settle_timeout=settings.browser_settle_timeout,
                block_resources=frozenset(settings.browser_block),
                context_reuse=settings.browser_context_reuse,
                blank_page=settings.browser_blank_page,
                user_agent=settings.user_agent,
                max_concurrent_pages=max(1, min(self._slots, 4)),
            ),
            timings=self.stages,
        )

    @cached_property
    def image_options(self) -> ImageOptions:
        from crawlfleet.worker.pipeline.images import ImageOptions

        settings = self.settings
        return ImageOptions(
            thumbnail_sizes=settings.thumbnail_sizes,
            thumbnail_format=settings.thumbnail_format,
            max_pixels=settings.image_max_pixels,
            max_bytes=settings.max_image_bytes,
        )

    @cached_property
    def images(self) -> ImageProcessor:
        from crawlfleet.worker.pipeline.images import ImageProcessor

        return ImageProcessor(self.image_options)

    @cached_property
    def image_index(self) -> FleetImageIndex:
        from crawlfleet.worker.pipeline.image_index import FleetImageIndex

        # Without a coordinator to ask (the pipeline run on its own), every image is processed here.
        return FleetImageIndex(self._find_stored_images, self.image_options)

    @property
    def image_index_if_made(self) -> FleetImageIndex | None:
        """The image index, if anything has used it yet (without making it)."""
        return self.image_index if "image_index" in self.__dict__ else None

    @cached_property
    def image_source(self) -> ImageSource:
        from crawlfleet.worker.pipeline.image_source import ImageSource

        settings = self.settings
        return ImageSource(
            self.fetcher,
            self.images,
            max_bytes=settings.max_image_bytes,
            timeout=settings.image_timeout,
            ttl=settings.image_cache_ttl,
            cache_bytes=settings.image_cache_bytes,
            index=self.image_index,
        )

    @property
    def browser_restarts(self) -> int:
        """Browser restarts so far (0 while the browser pool was never made)."""
        return self.browser.restarts if "browser" in self.__dict__ else 0

    @property
    def image_counts(self) -> dict[str, int]:
        """The image source's counts and images processed (none while it was never made): read
        when metrics are scraped, which must not make it in a worker whose jobs see no image."""
        if "image_source" not in self.__dict__:
            return {}
        return {**self.image_source.counts, "processed": self.image_source.processed}

    async def aclose(self) -> None:
        # Only what was made: closing makes nothing.
        made = self.__dict__
        closing = [made[name].aclose() for name in ("fetcher", "browser", "images") if name in made]
        results = await asyncio.gather(*closing, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
