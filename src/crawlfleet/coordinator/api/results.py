"""Scrape results: checks what a worker reports and splits it into the rows the store writes.

The job keeps its whole JobResult without thumbnail bytes (jobs.result); the bytes go to the
content-addressed thumbnails table, the rest to pages, images and page_images.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from crawlfleet.coordinator.errors import InvalidArgument
from crawlfleet.v1 import jobs_pb2

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PHASH = re.compile(r"^[0-9a-f]{16}$")
IMAGE_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF"})
THUMBNAIL_FORMATS = frozenset({"WEBP", "JPEG", "PNG"})
_RENDERED_WITH = {jobs_pb2.RENDER_MODE_HTTP: "http", jobs_pb2.RENDER_MODE_BROWSER: "browser"}


@dataclass
class ResultRows:
    """Rows for page_insert_many, image_insert_many, thumbnail_insert_many, page_image_insert_many."""

    pages: list[tuple[object, ...]] = field(default_factory=list)
    images: list[tuple[object, ...]] = field(default_factory=list)
    thumbnails: list[tuple[object, ...]] = field(default_factory=list)
    page_images: list[tuple[object, ...]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.pages or self.images or self.thumbnails or self.page_images)

    def extend(self, other: ResultRows) -> None:
        self.pages += other.pages
        self.images += other.images
        self.thumbnails += other.thumbnails
        self.page_images += other.page_images


def columns(rows: list[tuple[object, ...]], width: int) -> list[list[object]]:
    """Rows to the per-column arrays that unnest() takes."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _check(condition: bool, field_path: str, message: str) -> None:
    if not condition:
        raise InvalidArgument(field_path, message)


def check_image(image: jobs_pb2.ImageResult, path: str) -> None:
    if not image.sha256:  # failed before it was processed: only the URL and the reason
        _check(bool(image.error_type), f"{path}.error_type", "is required for an image without a sha256")
        return
    _check(bool(_SHA256.match(image.sha256)), f"{path}.sha256", "must be 64 lower-case hex digits")
    _check(image.format in IMAGE_FORMATS, f"{path}.format", f"must be one of {sorted(IMAGE_FORMATS)}")
    _check(image.width > 0 and image.height > 0, f"{path}.width", "width and height must be positive")
    _check(image.byte_size > 0, f"{path}.byte_size", "must be positive")
    _check(bool(_PHASH.match(image.perceptual_hash)), f"{path}.perceptual_hash", "must be 16 lower-case hex digits")
    for k, thumb in enumerate(image.thumbnails):
        tpath = f"{path}.thumbnails[{k}]"
        _check(thumb.format in THUMBNAIL_FORMATS, f"{tpath}.format", f"must be one of {sorted(THUMBNAIL_FORMATS)}")
        _check(thumb.width > 0 and thumb.height > 0 and thumb.max_side > 0, f"{tpath}.width", "sizes must be positive")
        _check(bool(thumb.data), f"{tpath}.data", "is required")
        # Content addressing is only as good as the hash: verify it rather than trust it.
        _check(hashlib.sha256(thumb.data).hexdigest() == thumb.sha256, f"{tpath}.sha256", "is not the SHA-256 of data")


def split_result(job_id: int, result: jobs_pb2.JobResult, path: str) -> tuple[bytes, ResultRows]:
    """The bytes to keep on the job (thumbnail data removed) and the rows of a scrape result."""
    rows = ResultRows()
    if result.WhichOneof("payload") != "scrape":
        return result.SerializeToString(deterministic=True), rows
    page = result.scrape
    _check(100 <= page.status_code <= 599, f"{path}.scrape.status_code", "must be an HTTP status")
    _check(page.rendered_with in _RENDERED_WITH, f"{path}.scrape.rendered_with", "must be HTTP or BROWSER")
    _check(bool(page.final_url), f"{path}.scrape.final_url", "is required")
    for k, image in enumerate(page.images):
        check_image(image, f"{path}.scrape.images[{k}]")
    rows.pages.append(
        (
            job_id,
            page.final_url,
            page.status_code,
            page.content_type,
            page.charset,
            _RENDERED_WITH[page.rendered_with],
            page.title,
            page.meta_description,
            page.canonical_url,
            page.language,
            page.main_text,
            page.body_bytes,
            json.dumps([{"url": r.url, "status_code": r.status_code} for r in page.redirects]),
            json.dumps([{"url": link.url, "text": link.text, "same_host": link.same_host} for link in page.links]),
            json.dumps(list(page.image_urls)),
            json.dumps([json.loads(doc) for doc in page.json_ld if _is_json(doc)]),
            json.dumps(dict(page.open_graph)),
            json.dumps(dict(page.headers)),
        )
    )
    stored = jobs_pb2.JobResult()
    stored.CopyFrom(result)
    for position, (image, kept) in enumerate(zip(page.images, stored.scrape.images, strict=True)):
        if not image.sha256:
            rows.page_images.append((job_id, position, image.url, None, image.error_type, image.error_message))
            continue
        rows.images.append(
            (image.sha256, image.format, image.width, image.height, image.byte_size, image.perceptual_hash)
        )
        rows.page_images.append(
            (job_id, position, image.url, image.sha256, image.error_type or None, image.error_message or None)
        )
        for thumb, kept_thumb in zip(image.thumbnails, kept.thumbnails, strict=True):
            rows.thumbnails.append(
                (thumb.sha256, image.sha256, thumb.max_side, thumb.width, thumb.height, thumb.format, thumb.data)
            )
            kept_thumb.ClearField("data")
    return stored.SerializeToString(deterministic=True), rows


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
