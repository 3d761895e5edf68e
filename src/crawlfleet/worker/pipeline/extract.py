"""Extraction of a fetched HTML page: title, metadata, readable text, links, images, JSON-LD and the
fields a job declares.

Pure and synchronous (no I/O), meant for the CPU executor. It never raises on bad markup, since selectolax
(lexbor) parses any string the way a browser would, and its cost stays bounded on hostile markup: nesting too
deep for lexbor to parse quickly is flattened first, and every list it returns is capped.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from crawlfleet.common import json_ld
from crawlfleet.common.urls import DEFAULT_PORTS, InvalidURL, normalize_url
from crawlfleet.worker.errors import JobError
from crawlfleet.worker.pipeline.fields import FieldRule, FieldValues, extract_fields

MAX_LINKS = 5_000
MAX_IMAGE_URLS = 1_000
MAX_LINK_TEXT_CHARS = 300
MAX_MAIN_TEXT_CHARS = 100_000
# Elements nested deeper than this are flattened before parsing (Blink caps nesting at 512 the same way).
MAX_NESTING = 1_000
# Below this many "<", the nesting is not worth measuring: even at worst the parse stays well under a second.
NESTING_CHECK_TAGS = 20_000

_WEB_SCHEMES = ("http", "https")
_IMAGE_META = frozenset({"og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src"})
# Not readable content, or page chrome repeated on every page of a site.
_SKIPPED_TAGS = frozenset(
    {"script", "style", "noscript", "template", "svg", "nav", "header", "footer", "aside", "form", "iframe"}
)
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "blockquote", "body", "br", "caption", "center", "dd", "details", "dialog", "div",
        "dl", "dt", "fieldset", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hgroup", "hr", "html",
        "legend", "li", "main", "menu", "ol", "option", "p", "pre", "section", "summary", "table", "tbody", "td",
        "tfoot", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
# Control tokens on the text walk's stack, between the nodes still to visit.
_LINE_BREAK = 0
_PRE_END = 1
# The nesting estimate's tokens: a comment start, or a tag that stops at the next "<" as well as ">", so that
# unclosed tags cannot make the scan quadratic.
_TAG = re.compile(r"<(?:(!--)|(/?)([A-Za-z][^\s/<>]*)[^<>]*?(/?)>)")
# Void elements, and elements that the next one of their kind closes: they add no depth.
_NOT_NESTING = frozenset(
    {
        "area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "meta", "param", "source",
        "track", "wbr", "p", "li", "dt", "dd", "option", "optgroup", "tr", "td", "th", "thead", "tbody", "tfoot",
        "colgroup", "caption", "rb", "rt", "rp", "rtc",
    }
)  # fmt: skip
# Elements whose content is text, where a "<div" means nothing.
_RAW_TEXT_END = {
    name: re.compile(f"</{name}", re.IGNORECASE)
    for name in ("script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes")
}
_HostKey = tuple[str, int | None]
# Shapes of URL that _Resolver handles without urljoin; anything else takes the slow path. No dot segments,
# since urljoin removes them, and no tab or newline, since urlsplit removes them.
_UNSIMPLE_CHARS = re.compile(r"[\t\n\r]|/\.")
_ROOT_RELATIVE = re.compile(r"/(?![/\\])")
_SIMPLE_ABSOLUTE = re.compile(r"(https?)://([A-Za-z0-9.-]+)(?::([0-9]{1,5}))?(?:[/?]|$)")
# One srcset candidate: a URL (no whitespace), then descriptors up to a comma outside parentheses.
_SRCSET_URL = re.compile(r"[\s,]*(\S+)")
_SRCSET_DESCRIPTORS = re.compile(r"(?:[^,(]|\([^)]*\)?)*")


@dataclass(frozen=True, kw_only=True)
class Link:
    url: str  # absolute, fragment removed
    text: str  # whitespace-collapsed anchor text, at most MAX_LINK_TEXT_CHARS
    same_host: bool  # same host as the page (case-insensitive, default ports ignored)
    followed: bool = True  # inside an element a follow selector matches (every link when there are none)


@dataclass(frozen=True, kw_only=True)
class PageData:
    title: str
    meta_description: str
    canonical_url: str  # absolute, "" if none
    language: str  # <html lang>, else "" (the caller may fall back to Content-Language)
    main_text: str  # readable text of <main>, <article> or <body>, one block per line
    links: tuple[Link, ...]  # http(s) only, one per _resource_key (first spelling and text win), page order
    image_urls: tuple[str, ...]  # <img>, srcset, <picture>, then og:image / twitter:image; one per _resource_key
    json_ld: tuple[str, ...]  # each valid application/ld+json block, re-serialized compactly
    open_graph: dict[str, str]  # og:* properties, first value wins
    text_length: int  # len(main_text)
    script_count: int  # <script> elements of any type
    fields: tuple[FieldValues, ...] = ()  # the declared fields' values, in the order declared


def parse_html(html: str) -> LexborHTMLParser:
    """Parses a whole document, as a browser with scripting disabled would (``<noscript>`` holds markup)."""
    return LexborHTMLParser(_flatten_deep_nesting(html))


def _flatten_deep_nesting(html: str) -> str:
    """``html`` without the start tags that would nest elements deeper than ``MAX_NESTING``.

    lexbor takes time quadratic in nesting depth (seconds for 20,000 nested ``<div>``), and a broken or hostile
    page can nest far deeper. The depth is estimated with a stack of open tag names, where an end tag closes
    the nearest open element of its name and everything opened after it, and an end tag with no such open
    element is ignored, as in the HTML parser; the estimate is close enough to bound the cost.
    """
    if html.count("<") <= NESTING_CHECK_TAGS:
        return html
    kept: list[str] = []
    copied = skip_until = 0  # html[copied:] is still to copy; comments and raw text end at skip_until
    open_tags: list[str] = []
    open_counts: dict[str, int] = {}
    for match in _TAG.finditer(html):
        if match.start() < skip_until:
            continue
        comment, closing, name, self_closing = match.groups()
        if comment:
            skip_until = html.find("-->", match.end()) + 3
            if skip_until < 3:
                break
            continue
        name = name.lower()
        if closing:
            if open_counts.get(name):
                while (top := open_tags.pop()) != name:
                    open_counts[top] -= 1
                open_counts[name] -= 1
        elif name in _RAW_TEXT_END:
            raw_end = _RAW_TEXT_END[name].search(html, match.end())
            if raw_end is None:
                break
            skip_until = raw_end.end()  # past the end tag too
        elif name in _NOT_NESTING or self_closing:
            pass
        # Links are worth keeping, and an <a> closes any open <a>, so links alone cannot nest deep.
        elif len(open_tags) < MAX_NESTING or name == "a":
            open_tags.append(name)
            open_counts[name] = open_counts.get(name, 0) + 1
        else:
            kept.append(html[copied : match.start()])
            copied = match.end()
    if not kept:
        return html
    kept.append(html[copied:])
    return "".join(kept)


def extract_page(
    html: str, page_url: str, *, fields: Sequence[FieldRule] = (), follow_selectors: Sequence[str] = ()
) -> PageData:
    """Extracts a page's data; ``page_url`` is its final URL, the base for relative URLs unless ``<base href>``.

    ``fields`` are the job's declared fields; links inside an element one of ``follow_selectors``
    matches are ``followed`` (every link when there are none).
    """
    tree = parse_html(html)
    base_url = _base_url(tree, page_url)
    metas = _metas(tree)
    resolver = _Resolver(base_url)
    title = _title(tree) or collapse_whitespace(metas.open_graph.get("og:title", ""))
    scripts = tree.css("script")
    main_text = _main_text(tree)
    documents = _json_ld(scripts)
    follow = _FollowRegions(tree, follow_selectors) if follow_selectors else None
    return PageData(
        title=title,
        meta_description=metas.description,
        canonical_url=_canonical_url(tree, base_url),
        language=_language(tree),
        main_text=main_text,
        links=_links(tree, resolver, page_url, follow),
        image_urls=_image_urls(tree, resolver, metas.image_urls),
        json_ld=tuple(text for text, _ in documents),
        open_graph=metas.open_graph,
        text_length=len(main_text),
        script_count=len(scripts),
        fields=extract_fields(tree, [document for _, document in documents], fields) if fields else (),
    )


def collapse_whitespace(text: str) -> str:
    """Strips ``text`` and turns each run of whitespace into one space."""
    return " ".join(text.split())


def absolute_url(base_url: str, raw: str) -> str | None:
    """``raw`` resolved against ``base_url`` without its fragment; None if empty or not a valid http(s) URL."""
    resolved = _resolve_slowly(base_url, raw.strip())
    return resolved[0] if resolved is not None else None


class _Resolver:
    """Resolves many URLs against one base; pages repeat hrefs, and most are absolute or root-relative.

    The shortcuts give the same result as ``absolute_url``, at a fraction of the cost of ``urljoin``.
    """

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url
        self._cache: dict[str, tuple[str, _HostKey] | None] = {}
        # The base's scheme and authority, which a root-relative URL keeps.
        self._origin: tuple[str, _HostKey] | None = None
        if (base := _resolve_slowly(base_url, base_url)) is not None:
            parts = urlsplit(base[0])
            self._origin = f"{parts.scheme}://{parts.netloc}", base[1]

    def resolve(self, raw: str) -> tuple[str, _HostKey] | None:
        """The absolute URL without fragment and its host key, or None if not a valid http(s) URL."""
        raw = raw.strip()
        if raw in self._cache:
            return self._cache[raw]
        resolved = self._resolve_simple(raw)
        if resolved is None:
            resolved = _resolve_slowly(self._base_url, raw)
        self._cache[raw] = resolved
        return resolved

    def _resolve_simple(self, raw: str) -> tuple[str, _HostKey] | None:
        if _UNSIMPLE_CHARS.search(raw):
            return None
        url = raw.split("#", 1)[0]
        if url.endswith("?") and url.count("?") == 1:
            url = url[:-1]  # as urlunsplit writes an empty query
        if self._origin is not None and _ROOT_RELATIVE.match(url):
            origin, origin_host = self._origin
            return origin + url, origin_host
        match = _SIMPLE_ABSOLUTE.match(url)
        if match is None:
            return None
        scheme, host, port = match.groups()
        if port and int(port) > 65535:
            return None
        port_number = int(port) if port else None
        if port_number == DEFAULT_PORTS[scheme]:
            port_number = None
        host = host.lower().rstrip(".")
        return (url, (host, port_number)) if host else None


def _resolve_slowly(base_url: str, raw: str) -> tuple[str, _HostKey] | None:
    if not raw:
        return None
    try:
        parts = urlsplit(urljoin(base_url, raw))
    except ValueError:  # for instance an unclosed IPv6 bracket
        return None
    host = _host_key(parts) if parts.scheme in _WEB_SCHEMES else None
    if host is None:
        return None
    return urlunsplit(parts._replace(fragment="")), host


def _host_key(parts: SplitResult) -> _HostKey | None:
    """What "same host" compares: the host name and any port other than the scheme's default."""
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number in range
        return None
    host = (host or "").rstrip(".")
    if not host:
        return None
    if port == DEFAULT_PORTS.get(parts.scheme):
        port = None
    return host, port


def _resource_key(url: str) -> str:
    """What the URLs of a page are compared by: the normalized form job target URLs have, so that
    ``/img/a.jpg`` and ``http://host:80/img/a.jpg`` are one image; a URL without one is its own key."""
    try:
        # A browser sends a space inside an href as %20; the normalized form refuses raw whitespace.
        return normalize_url(url.replace(" ", "%20"))
    except InvalidURL:
        return url


def _base_url(tree: LexborHTMLParser, page_url: str) -> str:
    base = tree.css_first("base[href]")
    if base is None:
        return page_url
    return absolute_url(page_url, base.attrs.get("href") or "") or page_url


def _title(tree: LexborHTMLParser) -> str:
    for node in tree.css("title"):
        # An <svg><title> is a tooltip, not the document's title.
        if not _inside(node, ("svg", "math")):
            return collapse_whitespace(node.text())
    return ""


def _inside(node: LexborNode, tags: tuple[str, ...]) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag in tags:
            return True
        parent = parent.parent
    return False


def _language(tree: LexborHTMLParser) -> str:
    root = tree.root
    return (root.attrs.get("lang") or "").strip() if root is not None else ""


def _canonical_url(tree: LexborHTMLParser, base_url: str) -> str:
    for node in tree.css("link[rel][href]"):
        if "canonical" in (node.attrs.get("rel") or "").lower().split():
            return absolute_url(base_url, node.attrs.get("href") or "") or ""
    return ""


@dataclass(frozen=True, kw_only=True)
class _Metas:
    description: str
    open_graph: dict[str, str]
    image_urls: list[str]  # as written, not yet resolved


def _metas(tree: LexborHTMLParser) -> _Metas:
    """What the ``<meta>`` elements say, gathered in one pass."""
    description: str | None = None
    open_graph: dict[str, str] = {}
    image_urls: list[str] = []
    for node in tree.css("meta[content]"):
        content = (node.attrs.get("content") or "").strip()
        name = (node.attrs.get("name") or "").strip().lower()
        prop = (node.attrs.get("property") or "").strip().lower() or name
        if name == "description" and description is None:
            description = collapse_whitespace(content)
        if prop.startswith("og:"):
            open_graph.setdefault(prop, content)
        if prop in _IMAGE_META or name in _IMAGE_META:
            image_urls.append(content)
    return _Metas(description=description or "", open_graph=open_graph, image_urls=image_urls)


def _links(
    tree: LexborHTMLParser, resolver: _Resolver, page_url: str, follow: _FollowRegions | None
) -> tuple[Link, ...]:
    page = _resolve_slowly(page_url, page_url)
    page_host = page[1] if page is not None else None
    links: dict[str, Link] = {}
    for node in tree.css("a[href]"):
        href = (node.attrs.get("href") or "").strip()
        # A fragment-only href points back at this page: not a link to follow.
        if href.startswith("#"):
            continue
        resolved = resolver.resolve(href)
        if resolved is None:
            continue
        key = _resource_key(resolved[0])
        followed = follow is None or follow.contains(node)
        if (known := links.get(key)) is not None:
            # The first spelling and text stand; any occurrence inside a followed part makes it followed.
            if followed and not known.followed:
                links[key] = dataclasses.replace(known, followed=True)
            continue
        url, host = resolved
        text = collapse_whitespace(node.text())[:MAX_LINK_TEXT_CHARS]
        links[key] = Link(url=url, text=text, same_host=host == page_host, followed=followed)
        if len(links) >= MAX_LINKS:
            break
    return tuple(links.values())


class _FollowRegions:
    """Whether a node lies inside (or is) an element that one of the job's follow selectors matches.

    Lookups walk up the tree and remember every node they pass, so marking all of a page's links
    costs one walk over the tree at most, however deep the regions nest.
    """

    def __init__(self, tree: LexborHTMLParser, selectors: Sequence[str]) -> None:
        self._regions: set[int] = set()
        for position, selector in enumerate(selectors):
            try:
                self._regions.update(node.mem_id for node in tree.css(selector))
            except SelectolaxError:  # the coordinator checks selectors at enqueue: a job from before that
                raise JobError(
                    f"follow_selectors[{position}] is not a CSS selector the worker can use: {selector[:100]!r}",
                    error_type="invalid_spec",
                    retryable=False,
                ) from None
        self._inside: dict[int, bool] = {}

    def contains(self, node: LexborNode) -> bool:
        passed: list[int] = []
        inside = False
        current: LexborNode | None = node
        while current is not None:
            mem_id = current.mem_id
            if (known := self._inside.get(mem_id)) is not None:
                inside = known
                break
            passed.append(mem_id)
            if mem_id in self._regions:
                inside = True
                break
            current = current.parent
        for mem_id in passed:
            self._inside[mem_id] = inside
        return inside


def _image_urls(tree: LexborHTMLParser, resolver: _Resolver, meta_urls: list[str]) -> tuple[str, ...]:
    urls: dict[str, str] = {}  # the first spelling of each image, by resource
    for raw in itertools.chain(_body_image_sources(tree), meta_urls):
        resolved = resolver.resolve(raw)
        if resolved is not None:
            urls.setdefault(_resource_key(resolved[0]), resolved[0])
            if len(urls) >= MAX_IMAGE_URLS:
                break
    return tuple(urls.values())


def _body_image_sources(tree: LexborHTMLParser) -> Iterator[str]:
    for node in tree.css("img, picture source"):
        if node.tag == "img":
            yield node.attrs.get("src") or ""
        yield from srcset_urls(node.attrs.get("srcset") or "")


def srcset_urls(srcset: str) -> list[str]:
    """The candidate URLs of a ``srcset`` attribute, as the HTML standard's parsing algorithm splits them.

    Descriptors (``2x``, ``100w``) are dropped. A URL ends at whitespace, so a ``data:`` URL's commas do not
    split it.
    """
    urls: list[str] = []
    pos = 0
    while (match := _SRCSET_URL.match(srcset, pos)) is not None:
        url, pos = match.group(1), match.end()
        if url.endswith(","):  # a candidate without descriptors
            url = url.rstrip(",")
        elif descriptors := _SRCSET_DESCRIPTORS.match(srcset, pos):
            pos = descriptors.end()
        if url:
            urls.append(url)
    return urls


def _json_ld(scripts: list[LexborNode]) -> list[tuple[str, Any]]:
    """Each valid JSON-LD block: its compact text and the document parsed (for declared fields)."""
    blocks: list[tuple[str, Any]] = []
    for node in scripts:
        if (node.attrs.get("type") or "").strip().lower() != "application/ld+json":
            continue
        try:
            # Strict JSON with a nesting bound, NUL dropped from strings: what the coordinator stores.
            document = json_ld.parse(node.text(), strip_nul=True)
            block = json_ld.dumps(document)
            block.encode()  # a lone surrogate from a "\ud800" escape could not be stored or sent
        except ValueError:  # InvalidJsonLd and UnicodeEncodeError are ValueErrors
            continue
        blocks.append((block, document))
    return blocks


def _main_text(tree: LexborHTMLParser) -> str:
    # <main> before <article>: an <article> that comes first sits outside the main content (a teaser, a card).
    root = tree.css_first("main") or tree.css_first("article") or tree.body
    return _readable_text(root) if root is not None else ""


def _readable_text(root: LexborNode) -> str:
    """Text of ``root`` one block per line, whitespace collapsed within lines, empty lines dropped.

    An explicit stack rather than recursion: malformed pages can nest elements thousands deep.
    """
    lines: list[str] = []
    line: list[str] = []
    length = 0
    pre_depth = 0

    def end_line() -> None:
        nonlocal length
        text = collapse_whitespace("".join(line))
        line.clear()
        if text:
            lines.append(text)
            length += len(text) + 1

    stack: list[LexborNode | int] = [root]
    while stack and length <= MAX_MAIN_TEXT_CHARS:
        item = stack.pop()
        if isinstance(item, int):
            if item == _LINE_BREAK:
                end_line()
            else:
                pre_depth -= 1
            continue
        tag = item.tag  # one property read per node: this loop is the hot spot on big pages
        if tag == "-text":
            text = item.text_content or ""
            if pre_depth:  # preformatted text keeps its line breaks
                first, *rest = text.split("\n")
                line.append(first)
                for part in rest:
                    end_line()
                    line.append(part)
            else:
                line.append(text)
        elif tag is None or tag in _SKIPPED_TAGS or tag.startswith("-"):  # comments, doctype
            continue
        else:
            if tag in _BLOCK_TAGS:
                end_line()
                stack.append(_LINE_BREAK)
            if tag == "pre":
                pre_depth += 1
                stack.append(_PRE_END)
            stack.extend(reversed(list(item.iter(include_text=True))))
    end_line()
    return "\n".join(lines)[:MAX_MAIN_TEXT_CHARS]
