"""Scrape results: checks what a worker reports and splits it into the rows the store writes.

The job keeps its whole JobResult without thumbnail bytes (jobs.result); the bytes go to the
content-addressed thumbnails table, the rest to pages, images and page_images.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence

from crawlfleet.common import json_ld
from crawlfleet.coordinator.api.scrape_options import FIELD_NAME
from crawlfleet.coordinator.errors import InvalidArgument
from crawlfleet.coordinator.storage.result_rows import (
    ImageReference,
    ImageRow,
    PageImageRow,
    PageRow,
    ResultRows,
    ThumbnailRow,
)
from crawlfleet.v1 import jobs_pb2

# Matched with fullmatch: "$" would also match before a trailing newline, which the CHECK refuses.
SHA256 = re.compile(r"[0-9a-f]{64}")
_PHASH = re.compile(r"[0-9a-f]{16}")
MAX_IMAGE_SIDE = 1_000_000
IMAGE_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF"})
THUMBNAIL_FORMATS = frozenset({"WEBP", "JPEG", "PNG"})
_RENDERED_WITH = {jobs_pb2.RENDER_MODE_HTTP: "http", jobs_pb2.RENDER_MODE_BROWSER: "browser"}


def _check(condition: bool, field_path: str, message: str) -> None:
    if not condition:
        raise InvalidArgument(field_path, message)


def check_image(image: jobs_pb2.ImageResult, path: str) -> None:
    if not image.sha256:  # failed before it was processed: only the URL and the reason
        _check(bool(image.error_type), f"{path}.error_type", "is required for an image without a sha256")
        _check(not image.stored, f"{path}.stored", "must be false for an image without a sha256")
        return
    _check(bool(SHA256.fullmatch(image.sha256)), f"{path}.sha256", "must be 64 lower-case hex digits")
    _check(image.format in IMAGE_FORMATS, f"{path}.format", f"must be one of {sorted(IMAGE_FORMATS)}")
    _check(image.width > 0 and image.height > 0, f"{path}.width", "width and height must be positive")
    _check(image.byte_size > 0, f"{path}.byte_size", "must be positive")
    _check(bool(_PHASH.fullmatch(image.perceptual_hash)), f"{path}.perceptual_hash", "must be 16 lower-case hex digits")
    for k, thumb in enumerate(image.thumbnails):
        tpath = f"{path}.thumbnails[{k}]"
        _check(thumb.format in THUMBNAIL_FORMATS, f"{tpath}.format", f"must be one of {sorted(THUMBNAIL_FORMATS)}")
        _check(thumb.width > 0 and thumb.height > 0 and thumb.max_side > 0, f"{tpath}.width", "sizes must be positive")
        _check(bool(SHA256.fullmatch(thumb.sha256)), f"{tpath}.sha256", "must be 64 lower-case hex digits")
        if image.stored:  # a reference: the Complete's transaction checks that it is stored
            _check(not thumb.data, f"{tpath}.data", "must be empty for a stored image (a reference)")
            continue
        _check(bool(thumb.data), f"{tpath}.data", "is required")
        # Content addressing is only as good as the hash: verify it rather than trust it.
        _check(hashlib.sha256(thumb.data).hexdigest() == thumb.sha256, f"{tpath}.sha256", "is not the SHA-256 of data")


def split_result(job_id: int, result: jobs_pb2.JobResult, path: str) -> tuple[bytes, ResultRows]:
    """The bytes to keep on the job (thumbnail data removed) and the rows of a scrape result."""
    if result.WhichOneof("payload") != "scrape":
        return result.SerializeToString(deterministic=True), ResultRows()
    page = result.scrape
    _check(100 <= page.status_code <= 599, f"{path}.scrape.status_code", "must be an HTTP status")
    _check(page.rendered_with in _RENDERED_WITH, f"{path}.scrape.rendered_with", "must be HTTP or BROWSER")
    _check(bool(page.final_url), f"{path}.scrape.final_url", "is required")
    _check(page.body_bytes >= 0, f"{path}.scrape.body_bytes", "must not be negative")
    for k, redirect in enumerate(page.redirects):
        _check(0 <= redirect.status_code <= 999, f"{path}.scrape.redirects[{k}].status_code", "is not an HTTP status")
    _check(
        not page.content_sha256 or bool(SHA256.fullmatch(page.content_sha256)),
        f"{path}.scrape.content_sha256",
        "must be 64 lower-case hex digits",
    )
    if page.not_modified:
        _check(page.status_code == 304, f"{path}.scrape.status_code", "must be 304 for a page not modified")
        _check(not page.images, f"{path}.scrape.images", "must be empty for a page not modified")
    fields = _field_values(page.fields, f"{path}.scrape.fields")
    documents = [_json_ld_document(doc, f"{path}.scrape.json_ld[{k}]") for k, doc in enumerate(page.json_ld)]
    for k, image in enumerate(page.images):
        check_image(image, f"{path}.scrape.images[{k}]")
    page_row = PageRow(
        job_id=job_id,
        final_url=page.final_url,
        status_code=page.status_code,
        content_type=page.content_type,
        charset=page.charset,
        rendered_with=_RENDERED_WITH[page.rendered_with],
        title=page.title,
        meta_description=page.meta_description,
        canonical_url=page.canonical_url,
        language=page.language,
        main_text=page.main_text,
        body_bytes=page.body_bytes,
        redirects=json.dumps([{"url": r.url, "status_code": r.status_code} for r in page.redirects]),
        links=json.dumps([{"url": link.url, "text": link.text, "same_host": link.same_host} for link in page.links]),
        image_urls=json.dumps(list(page.image_urls)),
        json_ld=json.dumps(documents, ensure_ascii=False),
        open_graph=json.dumps(dict(page.open_graph)),
        headers=json.dumps(dict(page.headers)),
        not_modified=page.not_modified,
        content_sha256=page.content_sha256 or None,
        fields=json.dumps(fields, ensure_ascii=False),
    )
    images: list[ImageRow] = []
    thumbnails: list[ThumbnailRow] = []
    page_images: list[PageImageRow] = []
    references: list[ImageReference] = []
    stored = jobs_pb2.JobResult()
    stored.CopyFrom(result)
    for position, (image, kept) in enumerate(zip(page.images, stored.scrape.images, strict=True)):
        if not image.sha256:
            page_images.append(
                PageImageRow(
                    job_id=job_id,
                    position=position,
                    url=image.url,
                    image_sha256=None,
                    error_type=image.error_type,
                    error_message=image.error_message,
                )
            )
            continue
        if image.stored:
            references.append(
                ImageReference(
                    job_id=job_id,
                    image_sha256=image.sha256,
                    thumbnail_sha256s=tuple(thumb.sha256 for thumb in image.thumbnails),
                )
            )
            kept.ClearField("stored")  # the job's record is the same whichever way the image came
        else:
            images.append(
                ImageRow(
                    sha256=image.sha256,
                    format=image.format,
                    width=image.width,
                    height=image.height,
                    byte_size=image.byte_size,
                    perceptual_hash=image.perceptual_hash,
                )
            )
            for thumb, kept_thumb in zip(image.thumbnails, kept.thumbnails, strict=True):
                thumbnails.append(
                    ThumbnailRow(
                        sha256=thumb.sha256,
                        image_sha256=image.sha256,
                        max_side=thumb.max_side,
                        width=thumb.width,
                        height=thumb.height,
                        format=thumb.format,
                        data=thumb.data,
                    )
                )
                kept_thumb.ClearField("data")
        page_images.append(
            PageImageRow(
                job_id=job_id,
                position=position,
                url=image.url,
                image_sha256=image.sha256,
                error_type=image.error_type or None,
                error_message=image.error_message or None,
            )
        )
    rows = ResultRows(
        pages=(page_row,),
        images=tuple(images),
        thumbnails=tuple(thumbnails),
        page_images=tuple(page_images),
        references=tuple(references),
    )
    return stored.SerializeToString(deterministic=True), rows


def _field_values(fields: Sequence[jobs_pb2.FieldValue], path: str) -> dict[str, list[str]]:
    """The declared fields' values by name, for pages.fields; names as a job may declare them."""
    values: dict[str, list[str]] = {}
    for k, field in enumerate(fields):
        _check(bool(FIELD_NAME.fullmatch(field.name)), f"{path}[{k}].name", "is not a field name a job may declare")
        _check(field.name not in values, f"{path}[{k}].name", f"{field.name!r} appears twice")
        values[field.name] = list(field.values)
    return values


def _json_ld_document(text: str, path: str) -> object:
    """A JSON-LD document jsonb can hold, or InvalidArgument naming ``path``."""
    try:
        return json_ld.parse(text)
    except json_ld.InvalidJsonLd as exc:
        raise InvalidArgument(path, str(exc)) from None
