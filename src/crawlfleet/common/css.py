"""CSS selectors as the worker's HTML parser (lexbor, through selectolax) reads them.

The coordinator checks a job's selectors with the same parser at enqueue, so that a selector the
worker could not use is refused with the field that holds it, not discovered on a page later.
"""

from __future__ import annotations

import functools

from selectolax.lexbor import LexborHTMLParser, SelectolaxError

# Longer selectors are refused before they are parsed: real ones are a few dozen characters.
MAX_SELECTOR_CHARS = 1024


@functools.lru_cache(maxsize=4096)  # a batch of jobs tends to repeat its selectors
def selector_error(selector: str) -> str | None:
    """Why ``selector`` is not one the worker can match, or None when it is."""
    if not selector.strip():
        return "is empty"
    if len(selector) > MAX_SELECTOR_CHARS:
        return f"is {len(selector)} characters; at most {MAX_SELECTOR_CHARS} are allowed"
    try:
        LexborHTMLParser("").css(selector)
    except SelectolaxError:
        return f"is not a CSS selector the worker can use: {selector[:100]!r}"
    return None
