"""JSON-LD documents that PostgreSQL's jsonb can hold: strict JSON (no NaN, no Infinity, no number
that overflows to one), nested at most ``MAX_DEPTH`` deep, and no NUL in any string or key.

The worker parses a page's blocks with ``parse(text, strip_nul=True)`` (a NUL in scraped text
carries no meaning, so it is dropped); the coordinator checks what it is sent with ``parse(text)``,
which refuses NUL instead of changing what a worker reported.
"""

from __future__ import annotations

import json
import math
from typing import Any

# Structured data on real pages nests a handful of levels; a bound keeps hostile documents cheap.
MAX_DEPTH = 64
_NUL = "\x00"


class InvalidJsonLd(ValueError):
    """The text is not a JSON document this system stores; the message says why."""


def parse(text: str, *, strip_nul: bool = False) -> Any:
    """The document ``text`` holds; raises ``InvalidJsonLd``."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise InvalidJsonLd(f"is nested deeper than {MAX_DEPTH} levels") from None
    except InvalidJsonLd:
        raise
    except ValueError as exc:
        raise InvalidJsonLd(f"is not JSON: {exc}") from None
    return _checked(value, strip_nul=strip_nul)


def dumps(value: Any) -> str:
    """Compact JSON text of a parsed document."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _refuse_constant(name: str) -> Any:
    raise InvalidJsonLd(f"holds {name}, which is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidJsonLd(f"holds the number {text[:40]}, too large to store")
    return value


def _checked(root: Any, *, strip_nul: bool) -> Any:
    """``root`` with its depth checked and its strings checked or cleaned, without recursion."""
    clean = _clean if strip_nul else _refuse_nul
    root = clean(root) if isinstance(root, str) else root
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidJsonLd(f"is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            if any(_NUL in key for key in node):
                if not strip_nul:
                    raise InvalidJsonLd("holds a NUL character (\\u0000), which cannot be stored")
                cleaned = {_clean(key): item for key, item in node.items()}
                node.clear()
                node.update(cleaned)
            items = node.items()
            for key, item in list(items):
                if isinstance(item, str):
                    node[key] = clean(item)
                elif isinstance(item, dict | list):
                    stack.append((item, depth + 1))
        elif isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, str):
                    node[i] = clean(item)
                elif isinstance(item, dict | list):
                    stack.append((item, depth + 1))
    return root


def _clean(text: str) -> str:
    return text.replace(_NUL, "")


def _refuse_nul(text: str) -> str:
    if _NUL in text:
        raise InvalidJsonLd("holds a NUL character (\\u0000), which cannot be stored")
    return text
