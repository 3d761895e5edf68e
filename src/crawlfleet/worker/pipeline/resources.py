"""What the scrape pipeline shares across the jobs of one worker: the guarded HTTP client, the
browser pool, the image processor and the images it has processed (by URL and by content). The
browser and the image pool start on first use, so a worker that never renders or sees an image
never pays for them."""

from __future__ import annotations

import asyncio

from crawlfleet.worker.metrics import StageTimer
from crawlfleet.worker.pipeline.browser import BrowserOptions, BrowserPool
from crawlfleet.worker.pipeline.egress import EgressPolicy
from crawlfleet.worker.pipeline.fetch import GuardedFetcher
from crawlfleet.worker.pipeline.image_index import Finder, FleetImageIndex
from crawlfleet.worker.pipeline.image_source import ImageSource
from crawlfleet.worker.pipeline.images import ImageOptions, ImageProcessor
from crawlfleet.worker.pipeline.settings import ScrapeSettings


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
        # Where the pipeline times its stages (the worker's metrics); nowhere when not given.
        self.stages = stages or StageTimer.unregistered()
        self.policy = EgressPolicy.from_settings(allow_loopback=settings.allow_loopback, allow=settings.egress_allow)
        self.fetcher = GuardedFetcher(self.policy, user_agent=settings.user_agent, max_connections=slots * 4)
        self.browser = BrowserPool(
            BrowserOptions(
                executable=settings.browser_executable,
                pages_per_browser=settings.browser_pages_per_browser,
                settle_timeout=settings.browser_settle_timeout,
                block_resources=frozenset(settings.browser_block),
                context_reuse=settings.browser_context_reuse,
                user_agent=settings.user_agent,
                max_concurrent_pages=max(1, min(slots, 4)),
            )
        )
        self.image_options = ImageOptions(
            thumbnail_sizes=settings.thumbnail_sizes,
            thumbnail_format=settings.thumbnail_format,
            max_pixels=settings.image_max_pixels,
            max_bytes=settings.max_image_bytes,
        )
        self.images = ImageProcessor(self.image_options)
        # Without a coordinator to ask (the pipeline run on its own), every image is processed here.
        self.image_index = FleetImageIndex(find_stored_images, self.image_options)
        self.image_source = ImageSource(
            self.fetcher,
            self.images,
            max_bytes=settings.max_image_bytes,
            timeout=settings.image_timeout,
            ttl=settings.image_cache_ttl,
            cache_bytes=settings.image_cache_bytes,
            index=self.image_index,
        )

    async def aclose(self) -> None:
        results = await asyncio.gather(
            self.fetcher.aclose(), self.browser.aclose(), self.images.aclose(), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
