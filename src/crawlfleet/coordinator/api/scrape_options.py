"""Checks the options of a scrape job that tell the worker what to extract and how to ask for the
page: declared fields, follow selectors and conditional GET validators.

Selectors are parsed here by the parser the worker matches them with (common/css.py), so a job the
worker could not run is refused at enqueue, naming the field (``jobs[0].scrape.fields[2].css``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from crawlfleet.common import result_limits
from crawlfleet.common.css import selector_error
from crawlfleet.coordinator.errors import InvalidArgument
from crawlfleet.v1 import jobs_pb2

MAX_FIELDS = result_limits.MAX_FIELDS
MAX_FOLLOW_SELECTORS = 20
MAX_JSON_LD_PATH_CHARS = 512
MAX_JSON_LD_PATH_KEYS = 32
MAX_ATTRIBUTE_CHARS = 256
MAX_VALIDATOR_CHARS = 1024
# Matched with fullmatch: "$" would also match before a trailing newline.
FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Dot-separated keys, none empty, without whitespace or control characters ("offers.price", "@graph").
_JSON_LD_PATH = re.compile(r"[^.\s\x00-\x1f\x7f]+(?:\.[^.\s\x00-\x1f\x7f]+)*")
# What HTML allows in an attribute name: no whitespace, quotes, "/", "=", ">" or control characters.
_ATTRIBUTE = re.compile(r"[^\s\"'/=>\x00-\x1f\x7f]+")
# A header value the worker can send as it is: printable ASCII.
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")


def check_scrape_options(spec: jobs_pb2.ScrapeSpec, path: str) -> None:
    """Raise InvalidArgument naming the first bad field, follow selector or validator under ``path``."""
    # Most jobs set none of them: skip the paths and calls (Enqueue takes this per job).
    if spec.fields:
        check_fields(spec.fields, f"{path}.fields")
    if spec.follow_selectors:
        check_follow_selectors(spec.follow_selectors, f"{path}.follow_selectors")
    for name in ("if_none_match", "if_modified_since"):
        if value := getattr(spec, name):
            check_validator(value, f"{path}.{name}")


def check_fields(fields: Sequence[jobs_pb2.FieldSpec], path: str) -> None:
    if len(fields) > MAX_FIELDS:
        raise InvalidArgument(path, f"has {len(fields)} fields; at most {MAX_FIELDS} are allowed")
    seen: set[str] = set()
    for i, field in enumerate(fields):
        where = f"{path}[{i}]"
        if not FIELD_NAME.fullmatch(field.name):
            raise InvalidArgument(
                f"{where}.name", "must be 1 to 64 lower-case letters, digits or '_', starting with a letter"
            )
        if field.name in seen:
            raise InvalidArgument(f"{where}.name", f"{field.name!r} is declared twice")
        seen.add(field.name)
        source = field.WhichOneof("source")
        if source is None:
            raise InvalidArgument(f"{where}.source", "set one source: css or json_ld")
        if source == "css":
            if (error := selector_error(field.css)) is not None:
                raise InvalidArgument(f"{where}.css", error)
            if len(field.attribute) > MAX_ATTRIBUTE_CHARS:
                raise InvalidArgument(f"{where}.attribute", f"is longer than {MAX_ATTRIBUTE_CHARS} characters")
            if field.attribute and not _ATTRIBUTE.fullmatch(field.attribute):
                raise InvalidArgument(f"{where}.attribute", "is not an HTML attribute name")
        else:
            _check_json_ld_path(field.json_ld, f"{where}.json_ld")
            if field.attribute:
                raise InvalidArgument(f"{where}.attribute", "is only for css fields")


def _check_json_ld_path(text: str, where: str) -> None:
    if len(text) > MAX_JSON_LD_PATH_CHARS:
        raise InvalidArgument(where, f"is longer than {MAX_JSON_LD_PATH_CHARS} characters")
    if not _JSON_LD_PATH.fullmatch(text):
        raise InvalidArgument(where, "must be dot-separated keys (e.g. offers.price), none empty, without spaces")
    if text.count(".") >= MAX_JSON_LD_PATH_KEYS:
        raise InvalidArgument(where, f"has more than {MAX_JSON_LD_PATH_KEYS} keys")


def check_follow_selectors(selectors: Sequence[str], path: str) -> None:
    if len(selectors) > MAX_FOLLOW_SELECTORS:
        raise InvalidArgument(path, f"has {len(selectors)} selectors; at most {MAX_FOLLOW_SELECTORS} are allowed")
    for i, selector in enumerate(selectors):
        if (error := selector_error(selector)) is not None:
            raise InvalidArgument(f"{path}[{i}]", error)


def check_validator(value: str, where: str) -> None:
    """An ETag or a date the worker sends back as a request header."""
    if len(value) > MAX_VALIDATOR_CHARS:
        raise InvalidArgument(where, f"is longer than {MAX_VALIDATOR_CHARS} characters")
    if not _HEADER_VALUE.fullmatch(value):
        raise InvalidArgument(where, "must be printable ASCII, without control characters")
