"""Refuses results past the caps of common/result_limits.py, before anything is made of them."""

from __future__ import annotations

from crawlfleet.common import result_limits as caps
from crawlfleet.coordinator.errors import InvalidArgument
from crawlfleet.v1 import jobs_pb2


def check_result_size(result: jobs_pb2.JobResult, path: str) -> None:
    """Raises InvalidArgument naming the first field past its cap (not retryable: the worker must
    send less)."""
    size = result.ByteSize()
    if size > caps.MAX_RESULT_BYTES:
        raise InvalidArgument(path, f"is {size} bytes encoded, more than {caps.MAX_RESULT_BYTES}")
    if result.WhichOneof("payload") != "scrape":
        return
    page = result.scrape
    main_text = len(page.main_text.encode())
    if main_text > caps.MAX_MAIN_TEXT_BYTES:
        raise InvalidArgument(f"{path}.scrape.main_text", f"is {main_text} bytes, more than {caps.MAX_MAIN_TEXT_BYTES}")
    for name, count, cap in (
        ("links", len(page.links), caps.MAX_LINKS),
        ("image_urls", len(page.image_urls), caps.MAX_IMAGE_URLS),
        ("images", len(page.images), caps.MAX_IMAGES),
    ):
        if count > cap:
            raise InvalidArgument(f"{path}.scrape.{name}", f"has {count} entries, more than {cap}")
    _check_fields(page, f"{path}.scrape.fields")
    thumbnails = sum(len(thumb.data) for image in page.images for thumb in image.thumbnails)
    if thumbnails > caps.MAX_THUMBNAIL_BYTES:
        raise InvalidArgument(
            f"{path}.scrape.images", f"carry {thumbnails} thumbnail bytes, more than {caps.MAX_THUMBNAIL_BYTES}"
        )


def _check_fields(page: jobs_pb2.ScrapeResult, path: str) -> None:
    if len(page.fields) > caps.MAX_FIELDS:
        raise InvalidArgument(path, f"has {len(page.fields)} entries, more than {caps.MAX_FIELDS}")
    total = 0
    for i, field in enumerate(page.fields):
        if len(field.values) > caps.MAX_FIELD_VALUES:
            raise InvalidArgument(
                f"{path}[{i}].values", f"has {len(field.values)} entries, more than {caps.MAX_FIELD_VALUES}"
            )
        for k, value in enumerate(field.values):
            size = len(value.encode())
            if size > caps.MAX_FIELD_VALUE_BYTES:
                raise InvalidArgument(
                    f"{path}[{i}].values[{k}]", f"is {size} bytes, more than {caps.MAX_FIELD_VALUE_BYTES}"
                )
            total += size
    if total > caps.MAX_FIELDS_BYTES:
        raise InvalidArgument(path, f"hold {total} bytes of values, more than {caps.MAX_FIELDS_BYTES}")
