"""Declared fields: named values a job asks for, by CSS selector or by a path into the page's JSON-LD.

Pure and synchronous, like the rest of extraction. A CSS field is the whitespace-collapsed text of
the elements its selector matches, or the value of one of their attributes; a JSON-LD field walks
the page's JSON-LD documents along dot-separated keys, searching arrays and ``@graph`` element by
element. Values come in document order; empty ones are skipped, so a field that matched nothing
has no values. Every field keeps within the worker's budget, half of the coordinator's caps
(common/result_limits.py), so a result with fields is never refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from crawlfleet.common import result_limits
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.errors import JobError

MAX_VALUES_PER_FIELD = result_limits.MAX_FIELD_VALUES // 2
MAX_VALUE_BYTES = result_limits.MAX_FIELD_VALUE_BYTES // 2
MAX_FIELDS_BYTES = result_limits.MAX_FIELDS_BYTES // 2
_GRAPH = "@graph"


@dataclass(frozen=True, kw_only=True)
class FieldRule:
    """One declared field: ``css`` (with ``attribute``, the attribute's value rather than the text)
    or ``json_ld`` (a dot-separated path); the first value found, or every one with ``all``."""

    name: str
    css: str = ""
    json_ld: str = ""
    attribute: str = ""
    all: bool = False

    @staticmethod
    def from_spec(spec: jobs_pb2.FieldSpec) -> FieldRule:
        return FieldRule(name=spec.name, css=spec.css, json_ld=spec.json_ld, attribute=spec.attribute, all=spec.all)


@dataclass(frozen=True, kw_only=True)
class FieldValues:
    name: str
    values: tuple[str, ...]


def extract_fields(
    tree: LexborHTMLParser, json_ld_documents: Sequence[Any], rules: Sequence[FieldRule]
) -> tuple[FieldValues, ...]:
    """Each rule's values in the order declared, within the budget: MAX_VALUES_PER_FIELD values of
    at most MAX_VALUE_BYTES each, MAX_FIELDS_BYTES in all (values past it are left out)."""
    budget = MAX_FIELDS_BYTES
    extracted = []
    for position, rule in enumerate(rules):
        found = _css_values(tree, rule, position) if rule.css else _json_ld_values(json_ld_documents, rule.json_ld)
        values: list[str] = []
        for value in found:
            value = cut_utf8(value, MAX_VALUE_BYTES)
            size = len(value.encode())
            if not value or size > budget:
                continue
            budget -= size
            values.append(value)
            if not rule.all or len(values) >= MAX_VALUES_PER_FIELD:
                break
        extracted.append(FieldValues(name=rule.name, values=tuple(values)))
    return tuple(extracted)


def cut_utf8(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, on a character boundary."""
    if len(text) * 4 <= max_bytes:  # cannot be longer: skip the encoding
        return text
    return text.encode()[:max_bytes].decode(errors="ignore")


def _css_values(tree: LexborHTMLParser, rule: FieldRule, position: int) -> Iterator[str]:
    try:
        nodes = tree.css(rule.css)
    except SelectolaxError:  # the coordinator checks selectors at enqueue: a job from before that
        raise JobError(
            f"fields[{position}].css is not a CSS selector the worker can use: {rule.css[:100]!r}",
            error_type="invalid_spec",
            retryable=False,
        ) from None
    for node in nodes:
        if rule.attribute:
            value = _attribute(node, rule.attribute)
            if value is not None:
                yield value.strip()
        else:
            yield " ".join(node.text().split())


def _attribute(node: LexborNode, name: str) -> str | None:
    attrs = node.attrs
    # The HTML parser lower-cases attribute names; SVG and MathML keep some camel-cased.
    value = attrs.get(name)
    return attrs.get(name.lower()) if value is None else value


def _json_ld_values(documents: Sequence[Any], path: str) -> Iterator[str]:
    keys = path.split(".")
    for document in documents:
        for found in _walk(document, keys):
            yield from _rendered(found)


def _walk(root: Any, keys: list[str]) -> Iterator[Any]:
    """What ``keys`` lead to from ``root``, depth first in document order. An array is searched
    element by element; an object without the next key is searched through its ``@graph``."""
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, list):
            stack.extend((item, depth) for item in reversed(node))
        elif depth == len(keys):
            yield node
        elif isinstance(node, dict):
            key = keys[depth]
            if key in node:
                stack.append((node[key], depth + 1))
            elif isinstance(node.get(_GRAPH), list | dict):
                stack.append((node[_GRAPH], depth))


def _rendered(value: Any) -> Iterable[str]:
    """A value found as strings: text as it is, numbers and booleans as their JSON text, objects as
    compact JSON; an array gives its elements, null nothing."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, str):
            yield item
        elif item is not None:
            yield json.dumps(item, separators=(",", ":"), ensure_ascii=False)
