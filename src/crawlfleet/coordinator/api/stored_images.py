"""FindStoredImages: which images (by the SHA-256 of their bytes) the fleet holds, so that workers
report them by reference (ImageResult.stored) instead of processing and sending them again."""

from __future__ import annotations

from collections.abc import Sequence

from crawlfleet.coordinator.api.results import SHA256
from crawlfleet.coordinator.errors import InvalidArgument
from crawlfleet.coordinator.storage.result_rows import StoredImage
from crawlfleet.v1 import jobs_pb2

MAX_FIND_IMAGES = 1000


def image_hashes(sha256s: Sequence[str], field: str = "sha256s") -> list[str]:
    """The distinct hashes asked for, or InvalidArgument naming the field."""
    if len(sha256s) > MAX_FIND_IMAGES:
        raise InvalidArgument(field, f"has {len(sha256s)} entries; at most {MAX_FIND_IMAGES} are allowed")
    for i, sha256 in enumerate(sha256s):
        if not SHA256.fullmatch(sha256):
            raise InvalidArgument(f"{field}[{i}]", "must be 64 lower-case hex digits")
    return sorted(set(sha256s))


def stored_image_result(image: StoredImage) -> jobs_pb2.ImageResult:
    """A stored image as a worker reports it by reference: metadata and thumbnails without bytes."""
    return jobs_pb2.ImageResult(
        sha256=image.sha256,
        format=image.format,
        width=image.width,
        height=image.height,
        byte_size=image.byte_size,
        perceptual_hash=image.perceptual_hash,
        stored=True,
        thumbnails=[
            jobs_pb2.Thumbnail(sha256=sha256, max_side=max_side, width=width, height=height, format=fmt)
            for sha256, max_side, width, height, fmt in zip(
                image.thumbnail_sha256s,
                image.thumbnail_max_sides,
                image.thumbnail_widths,
                image.thumbnail_heights,
                image.thumbnail_formats,
                strict=True,
            )
        ],
    )
