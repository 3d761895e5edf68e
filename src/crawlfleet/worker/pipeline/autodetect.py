"""Whether a page fetched over plain HTTP needs a real browser (render mode ``auto``).

The rule: a page escalates to the browser only if it has at least one ``<script>`` a browser would run (no
``type``, ``type="module"`` or a JavaScript type; JSON-LD and other data blocks do not count, and without a
runnable script a browser would show the same thing) and its readable text (``PageData.main_text``) is short:

1. Under 200 characters of text: escalate. The reason names the most specific evidence found: an empty
   app root, a ``<noscript>`` asking for JavaScript, inline app state (``__NEXT_DATA__``, ``__NUXT__``,
   ``__INITIAL_STATE__``, ``__PRELOADED_STATE__``, ``__APOLLO_STATE__``), else just the text and script counts.
2. From 200 to 999 characters: escalate only on evidence of an app shell, that is an empty app root
   (``<div id="root|app|__next|__nuxt|svelte">`` or ``<app-root>`` holding no element and no text), or a
   ``<noscript>`` whose text asks to enable JavaScript ("enable JavaScript", "JavaScript is required", ...).
   Inline app state alone does not count here: server-rendered Next.js and Nuxt pages carry it too.
3. 1,000 characters or more: never escalate; the content is there.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

from crawlfleet.worker.pipeline.extract import PageData, parse_html

MIN_TEXT_CHARS = 200
SHELL_TEXT_CHARS = 1_000

_APP_ROOTS = "div#root, div#app, div#__next, div#__nuxt, div#svelte, app-root"
_ENABLE_JAVASCRIPT = re.compile(
    r"\b(?:enable|turn on|switch on|activate|allow)\s+(?:your\s+)?(?:javascript|js)\b"
    r"|\b(?:javascript|js)\s+(?:is\s+)?(?:required|disabled|not enabled|turned off|must be enabled|needs to be enabled)"
    r"|\b(?:requires?|needs?)\s+(?:javascript|js)\b",
    re.IGNORECASE,
)
_APP_STATE = re.compile(r"__NEXT_DATA__|__NUXT__|__INITIAL_STATE__|__PRELOADED_STATE__|__APOLLO_STATE__")


def needs_browser(html: str, page: PageData) -> str | None:
    """A short reason why ``page`` (extracted from ``html``) needs a browser to show its content, else None.

    Parses ``html`` again when the text is short, which takes milliseconds on a big page: call it in the CPU
    executor, like ``extract_page``.
    """
    if page.script_count == 0 or page.text_length >= SHELL_TEXT_CHARS:
        return None
    tree = parse_html(html)
    scripts = sum(1 for node in tree.css("script") if _is_runnable(node))
    if scripts == 0:
        return None
    evidence = _empty_app_root(tree) or _noscript_asking_for_javascript(tree)
    if evidence is None and page.text_length < MIN_TEXT_CHARS:
        evidence = _app_state(html)
        if evidence is None:
            return f"only {page.text_length} characters of text, with {scripts} scripts"
    if evidence is None:
        return None
    return f"{evidence}, and only {page.text_length} characters of text"


def _is_runnable(script: LexborNode) -> bool:
    kind = (script.attrs.get("type") or "").strip().lower()
    return kind in ("", "module") or any(word in kind for word in ("javascript", "ecmascript", "jscript"))


def _empty_app_root(tree: LexborHTMLParser) -> str | None:
    for node in tree.css(_APP_ROOTS):
        if _is_empty(node):
            return f"empty app root <{node.tag}{'#' + node.id if node.id else ''}>"
    return None


def _is_empty(node: LexborNode) -> bool:
    for child in node.iter(include_text=True):
        if child.is_element_node or (child.is_text_node and (child.text_content or "").strip()):
            return False
    return True


def _noscript_asking_for_javascript(tree: LexborHTMLParser) -> str | None:
    for node in tree.css("noscript"):
        if _ENABLE_JAVASCRIPT.search(node.text()):
            return "<noscript> asks to enable JavaScript"
    return None


def _app_state(html: str) -> str | None:
    match = _APP_STATE.search(html)
    return f"inline app state {match.group()}" if match else None
