"""The images of a page: from the worker's image source (cached by URL, else downloaded guarded and
bounded, processed off the loop), then fitted to the result budget."""

from __future__ import annotations

import asyncio

from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.context import JobContext
from crawlfleet.worker.pipeline.fetch import FetchError
from crawlfleet.worker.pipeline.images import ImageError, ProcessedImage


async def process_page_images(ctx: JobContext, urls: list[str]) -> list[jobs_pb2.ImageResult]:
    """One ImageResult per URL, in order; a failed image carries its reason, never fails the job."""
    if not urls:
        return []  # not an observation of the images stage
    settings = ctx.settings.scrape
    gate = asyncio.Semaphore(settings.image_concurrency)

    async def one(url: str) -> jobs_pb2.ImageResult:
        async with gate:
            try:
                processed = await ctx.resources.image_source.image(url)
            except (FetchError, ImageError) as exc:
                return jobs_pb2.ImageResult(url=url, error_type=exc.error_type, error_message=exc.message)
            return image_result(url, processed, stored=index.is_stored(processed.sha256))

    index = ctx.resources.image_index
    with ctx.resources.stages.time("images"):
        results = list(await asyncio.gather(*(one(url) for url in urls)))
    fit_budget(results, settings.max_result_bytes)
    return results


def image_result(url: str, image: ProcessedImage, *, stored: bool = False) -> jobs_pb2.ImageResult:
    """The image as a result reports it: with its thumbnails' bytes, or by reference when the
    fleet has it stored (or this worker holds no bytes of it)."""
    stored = stored or not all(t.data for t in image.thumbnails)
    return jobs_pb2.ImageResult(
        url=url,
        sha256=image.sha256,
        format=image.format,
        width=image.width,
        height=image.height,
        byte_size=image.byte_size,
        perceptual_hash=image.perceptual_hash,
        stored=stored and bool(image.thumbnails),
        thumbnails=[
            jobs_pb2.Thumbnail(
                max_side=t.max_side,
                width=t.width,
                height=t.height,
                format=t.format,
                sha256=t.sha256,
                data=b"" if stored else t.data,
            )
            for t in image.thumbnails
        ],
    )


def fit_budget(results: list[jobs_pb2.ImageResult], budget: int) -> None:
    """Drop the thumbnails of images past the byte budget, so a result stays far below the
    message limit; their metadata stays, with the reason."""
    used = 0
    for result in results:
        size = sum(len(t.data) for t in result.thumbnails)
        if used + size <= budget:
            used += size
            continue
        del result.thumbnails[:]
        result.error_type = "result_budget"
        result.error_message = f"thumbnails dropped: the result's {budget} byte budget for thumbnails is spent"
