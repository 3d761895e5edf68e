"""Processed images by the SHA-256 of their bytes: the same picture on many pages (logos,
product shots reused across listings) is decoded and thumbnailed once per worker, not per page.
Hashing costs a fraction of a millisecond; processing costs tens."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from crawlfleet.worker.pipeline.images import ProcessedImage

DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
# What an entry without thumbnail bytes (metadata from the fleet's index) counts for, so that
# those are bounded too.
METADATA_ENTRY_BYTES = 512


class ProcessedImageCache:
    """A least-recently-used map bounded by the thumbnail bytes it holds."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._max_bytes = max_bytes
        self._entries: OrderedDict[str, ProcessedImage] = OrderedDict()
        self._bytes = 0
        self.hits = 0

    @staticmethod
    def key(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    def get(self, key: str) -> ProcessedImage | None:
        image = self._entries.get(key)
        if image is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        return image

    def put(self, key: str, image: ProcessedImage) -> None:
        size = _size(image)
        if key in self._entries or size > self._max_bytes:
            return
        self._entries[key] = image
        self._bytes += size
        while self._bytes > self._max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= _size(evicted)

    def drop_without_data(self, key: str) -> bool:
        """Drops the entry if it holds no thumbnail bytes (metadata the fleet's index gave); whether
        it did."""
        image = self._entries.get(key)
        if image is None or any(t.data for t in image.thumbnails):
            return False
        del self._entries[key]
        self._bytes -= _size(image)
        return True

    def __len__(self) -> int:
        return len(self._entries)


def _size(image: ProcessedImage) -> int:
    return sum(len(t.data) for t in image.thumbnails) or METADATA_ENTRY_BYTES
