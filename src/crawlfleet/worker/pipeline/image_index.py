"""The fleet's image index, as a worker sees it: which images (by the SHA-256 of their bytes) the
coordinator has stored, so that a picture is processed and sent once by the fleet, not once per
worker and page.

After downloading an image it does not hold processed, the worker asks the coordinator
(``FindStoredImages``, the questions of concurrent jobs batched in one call) whether that content
is stored with the thumbnails this worker makes; if so it takes the stored metadata instead of
processing the bytes. A page's result then refers to stored images by hash (``ImageResult.stored``,
thumbnails without data) instead of carrying their thumbnails: the images the coordinator said it
holds, and those an earlier Complete of this worker carried and the coordinator took.

A Complete whose references are no longer stored (a purge removed them meanwhile) is refused with
``IMAGE_NOT_STORED``; the worker then forgets those images and gives the job back (``release``),
so its next run processes and sends them. Downloads are untouched: the index is asked about
bytes this worker fetched itself, through its egress guard, under its own freshness rules.

A coordinator without the call (an older version) answers UNIMPLEMENTED: the index then stays off
and results carry their thumbnails, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence

import grpc

from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.errors import CoordinatorError
from crawlfleet.worker.pipeline.images import ImageOptions, ProcessedImage, ThumbnailData

log = logging.getLogger(__name__)

# Hashes remembered as stored; an entry is about 100 bytes.
DEFAULT_MAX_STORED = 100_000
MAX_FIND_BATCH = 1000  # the coordinator's bound on one FindStoredImages call

Finder = Callable[[Sequence[str]], Awaitable[Sequence[jobs_pb2.ImageResult]]]


class FleetImageIndex:
    """Stored images by content hash: asked of the coordinator in batches, and learnt from the
    Completes it took. ``counts`` has how many lookups ``found`` an image and how many ``missed``."""

    def __init__(self, find: Finder | None, options: ImageOptions, *, max_stored: int = DEFAULT_MAX_STORED) -> None:
        self._find = find
        self._options = options
        self._max_stored = max_stored
        # None until the coordinator answered a lookup: references go only to one that has the index.
        self._available: bool | None = None if find is not None else False
        self._stored: OrderedDict[str, None] = OrderedDict()
        self._asked: dict[str, asyncio.Future[ProcessedImage | None]] = {}
        self._flush: asyncio.Task[None] | None = None
        self._sending: dict[int, tuple[str, ...]] = {}  # job id -> images its pending Complete carries
        self.counts: dict[str, int] = {"found": 0, "missed": 0}

    @property
    def enabled(self) -> bool:
        """Whether results may refer to stored images (the coordinator has the index)."""
        return bool(self._available)

    def is_stored(self, sha256: str) -> bool:
        return self.enabled and sha256 in self._stored

    async def find(self, sha256: str) -> ProcessedImage | None:
        """The stored image with this worker's thumbnails (metadata only, no bytes), or None: not
        stored, stored with other thumbnails, or the coordinator could not say."""
        if self._available is False:
            return None
        asked = self._asked.get(sha256)
        if asked is None:
            asked = asyncio.get_running_loop().create_future()
            self._asked[sha256] = asked
            if self._flush is None:
                # Questions asked while this loop turn runs go in one call.
                self._flush = asyncio.ensure_future(self._ask_all())
        return await asyncio.shield(asked)

    async def _ask_all(self) -> None:
        await asyncio.sleep(0)
        asked, self._asked, self._flush = self._asked, {}, None
        hashes = list(asked)
        found: dict[str, ProcessedImage] = {}
        try:
            for start in range(0, len(hashes), MAX_FIND_BATCH):
                for image in await self._find_stored(hashes[start : start + MAX_FIND_BATCH]):
                    usable = self._usable(image)
                    if usable is not None:
                        found[image.sha256] = usable
        finally:
            for sha256, future in asked.items():
                if not future.done():
                    future.set_result(found.get(sha256))
        self.counts["found"] += len(found)
        self.counts["missed"] += len(hashes) - len(found)
        self.mark_stored(found)

    async def _find_stored(self, hashes: Sequence[str]) -> Sequence[jobs_pb2.ImageResult]:
        assert self._find is not None
        try:
            images = await self._find(hashes)
        except CoordinatorError as exc:
            if exc.code == grpc.StatusCode.UNIMPLEMENTED:
                log.info("the coordinator has no image index: results carry their thumbnails")
                self._available = False
            else:
                log.warning("image index lookup failed, processing the images here: %s", exc)
            return []
        self._available = True
        return images

    def _usable(self, image: jobs_pb2.ImageResult) -> ProcessedImage | None:
        """The stored image as this worker would have made it: one thumbnail per configured size, in
        the configured format; else None."""
        wanted = self._options.thumbnail_format
        by_side = {t.max_side: t for t in image.thumbnails if t.format == wanted}
        longer = max(image.width, image.height)
        # Sizes at or above the longer side all hold the image unresized, the same bytes: the store
        # keeps one row (one max_side) for all of them.
        unresized = next((t for side, t in sorted(by_side.items()) if side >= longer), None)
        thumbnails = []
        for side in sorted(set(self._options.thumbnail_sizes), reverse=True):  # as process_image makes them
            thumb = by_side.get(side) or (unresized if side >= longer else None)
            if thumb is None:
                return None
            thumbnails.append(
                ThumbnailData(
                    max_side=side,
                    width=thumb.width,
                    height=thumb.height,
                    format=thumb.format,
                    sha256=thumb.sha256,
                    data=b"",
                )
            )
        return ProcessedImage(
            sha256=image.sha256,
            format=image.format,
            width=image.width,
            height=image.height,
            byte_size=image.byte_size,
            perceptual_hash=image.perceptual_hash,
            thumbnails=tuple(thumbnails),
        )

    def mark_stored(self, hashes: Iterable[str]) -> None:
        for sha256 in hashes:
            self._stored[sha256] = None
            self._stored.move_to_end(sha256)
        while len(self._stored) > self._max_stored:
            self._stored.popitem(last=False)

    def forget(self, hashes: Iterable[str]) -> None:
        """The coordinator no longer holds these: send them again."""
        for sha256 in hashes:
            self._stored.pop(sha256, None)

    def sending(self, job_id: int, result: jobs_pb2.JobResult) -> None:
        """A Complete is about to carry ``result``: once the coordinator takes it, the images whose
        thumbnails it carries are stored."""
        carried = tuple(
            image.sha256
            for image in result.scrape.images
            if image.sha256 and not image.stored and image.thumbnails and not image.error_type
        )
        if carried and self._available is not False:
            self._sending[job_id] = carried

    def settled(self, job_id: int, *, completed: bool) -> None:
        carried = self._sending.pop(job_id, ())
        if completed:
            self.mark_stored(carried)
