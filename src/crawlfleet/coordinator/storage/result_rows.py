"""Rows of a scrape result, written in the transaction that completes their job: the page,
image metadata, thumbnail bytes (both content-addressed) and the page's images in order."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple


class StoredPage(NamedTuple):
    """A page page_insert_many wrote."""

    job_id: int


class PageRow(NamedTuple):
    """One row of pages (page_insert_many); the JSON fields are JSON text."""

    job_id: int
    final_url: str
    status_code: int
    content_type: str
    charset: str
    rendered_with: str
    title: str
    meta_description: str
    canonical_url: str
    language: str
    main_text: str
    body_bytes: int
    redirects: str
    links: str
    image_urls: str
    json_ld: str
    open_graph: str
    headers: str
    not_modified: bool
    content_sha256: str | None
    fields: str


class ImageRow(NamedTuple):
    """Metadata of one image (image_insert_many), once per content hash."""

    sha256: str
    format: str
    width: int
    height: int
    byte_size: int
    perceptual_hash: str


class ThumbnailRow(NamedTuple):
    """One thumbnail with its bytes (thumbnail_insert_many), once per image and content hash."""

    sha256: str
    image_sha256: str
    max_side: int
    width: int
    height: int
    format: str
    data: bytes


class PageImageRow(NamedTuple):
    """An image of a page at its position (page_image_insert_many); image_sha256 is None for an
    image that failed before it was processed."""

    job_id: int
    position: int
    url: str
    image_sha256: str | None
    error_type: str | None
    error_message: str | None


class ImageReference(NamedTuple):
    """An image a result refers to as stored (ImageResult.stored), with its thumbnails' hashes:
    checked, not written, by the Complete's transaction."""

    job_id: int
    image_sha256: str
    thumbnail_sha256s: tuple[str, ...]


class LockedImage(NamedTuple):
    """A stored image image_lock_stored locked."""

    sha256: str


class FoundThumbnail(NamedTuple):
    """A stored thumbnail (thumbnail_find_many) and the image it belongs to."""

    sha256: str
    image_sha256: str


class StoredImage(NamedTuple):
    """A stored image and its thumbnails' metadata (image_find_stored), for FindStoredImages."""

    sha256: str
    format: str
    width: int
    height: int
    byte_size: int
    perceptual_hash: str
    thumbnail_sha256s: list[str]
    thumbnail_max_sides: list[int]
    thumbnail_widths: list[int]
    thumbnail_heights: list[int]
    thumbnail_formats: list[str]


@dataclass(frozen=True, kw_only=True, slots=True)
class ResultRows:
    """The rows of one or more scrape results."""

    pages: tuple[PageRow, ...] = ()
    images: tuple[ImageRow, ...] = ()
    thumbnails: tuple[ThumbnailRow, ...] = ()
    page_images: tuple[PageImageRow, ...] = ()
    references: tuple[ImageReference, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.pages or self.images or self.thumbnails or self.page_images or self.references)

    @staticmethod
    def merge(parts: Iterable[ResultRows]) -> ResultRows:
        """All rows of parts, each table's rows in the order of parts."""
        parts = list(parts)
        return ResultRows(
            pages=tuple(row for part in parts for row in part.pages),
            images=tuple(row for part in parts for row in part.images),
            thumbnails=tuple(row for part in parts for row in part.thumbnails),
            page_images=tuple(row for part in parts for row in part.page_images),
            references=tuple(row for part in parts for row in part.references),
        )
