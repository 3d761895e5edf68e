"""Sitemaps (sitemaps.org): XML sitemaps and sitemap indexes, gzipped or not, plain-text sitemaps
(one URL per line), and the `Sitemap:` lines of a robots.txt.

Hostile input costs bounded work:
- XML is parsed by expat, the parser under `xml.etree`, with every document type declaration
  refused. A sitemap has no use for a DTD, and without one there is no entity to expand (billion
  laughs) and no external entity to fetch or read (XXE). defusedxml refuses the same things through
  `xml.etree`'s tree builder; expat's own handlers do it here without a dependency, and let the
  document be parsed as it is inflated instead of as a tree.
- A gzipped sitemap (told by its magic bytes, whatever its name or Content-Type says) is inflated a
  bounded step at a time (`decoding.Inflater`) and the decompressed bytes are counted against the
  cap as they come: a bomb is refused having inflated at most one step past the cap, and the
  decompressed document is never held whole.
- Element nesting and the text kept from one element are bounded.

Every URL is normalized (`common.urls.normalize_url`); a URL that is not an absolute http(s) URL
(a relative one included: sitemaps.org requires absolute URLs) is dropped and counted.
"""

from __future__ import annotations

import codecs
import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit
from xml.parsers import expat

from crawlfleet.common.urls import InvalidURL, normalize_url
from crawlfleet.worker.pipeline.decoding import DECODE_STEP, CorruptEncoding, Inflater

GZIP_MAGIC = b"\x1f\x8b"
# sitemaps.org: an index lists at most 50,000 sitemaps; more are ignored.
MAX_INDEX_SITEMAPS = 50_000
# Deep enough for every sitemap extension (image, video, news nest three or four levels).
MAX_ELEMENT_DEPTH = 32
# Text kept from a <loc> or <lastmod>: a URL is at most 2,048 characters (normalize_url).
MAX_ELEMENT_TEXT = 8192
# A line of a text sitemap; longer lines are dropped without being held.
MAX_LINE_BYTES = 8192
# Blank bytes before the first character, which tells XML from text.
MAX_LEADING_BLANK = 64 * 1024
# What a result's entry costs encoded, besides its URL: tags, lengths and a Timestamp.
ENTRY_OVERHEAD_BYTES = 24
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_W3C_DATETIME = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2}))?)?)?",
    re.ASCII,
)

DocumentKind = Literal["urlset", "sitemapindex", "text"]


class SitemapError(Exception):
    """A sitemap that cannot be read: `error_type` is invalid_sitemap or sitemap_too_large."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True)
class Entry:
    """A URL a sitemap lists (normalized) and its <lastmod> when valid."""

    url: str
    lastmod: dt.datetime | None = None


@dataclass
class UrlCollector:
    """The URLs of one job across its sitemaps: each once, at most `limit` of them and `budget`
    encoded bytes. `truncated` once a sitemap listed a URL past either bound."""

    limit: int
    budget: int
    entries: list[Entry] = field(default_factory=list)
    truncated: bool = False
    _seen: set[str] = field(default_factory=set)
    _size: int = 0

    def add(self, url: str, lastmod: dt.datetime | None) -> bool:
        """Keep the URL unless it was seen; False once the bounds are reached (stop reading)."""
        if url in self._seen:
            return True
        size = len(url.encode()) + ENTRY_OVERHEAD_BYTES
        if len(self.entries) >= self.limit or self._size + size > self.budget:
            self.truncated = True
            return False
        self._seen.add(url)
        self._size += size
        self.entries.append(Entry(url, lastmod))
        return True


@dataclass
class Document:
    """What one sitemap held: its kind, the sitemaps it lists (an index), and how many of its URLs
    were dropped as invalid. Its URLs went to the job's UrlCollector."""

    kind: DocumentKind
    sitemaps: list[str] = field(default_factory=list)
    dropped: int = 0


class _Full(Exception):
    """The collector is full: reading on would only drop URLs."""


def parse_sitemap(body: bytes, urls: UrlCollector, *, max_bytes: int) -> Document:
    """Read one sitemap's body (gzipped or not) into `urls`; its kind and the sitemaps it lists.

    Raises SitemapError when the body is not a sitemap, or decompresses to more than `max_bytes`.
    Stops early, without error, once `urls` is full.
    """
    reader = _Reader(urls)
    try:
        for piece in _decompressed(body, max_bytes):
            reader.feed(piece)
        return reader.close()
    except _Full:
        return reader.document()


def robots_sitemaps(robots_txt: str) -> list[str]:
    """The values of a robots.txt's `Sitemap:` lines, in order (any group; comments removed)."""
    found = []
    for line in robots_txt.splitlines():
        name, colon, value = line.partition("#")[0].partition(":")
        if colon and name.strip().lower() == "sitemap" and value.strip():
            found.append(value.strip())
    return found


def is_root(normalized_url: str) -> bool:
    """Whether a URL is a site's root ("/" without a query): its sitemaps are to be found."""
    parts = urlsplit(normalized_url)
    return parts.path == "/" and not parts.query


def parse_lastmod(text: str) -> dt.datetime | None:
    """A W3C Datetime (the forms sitemaps.org allows: a year, a month, a date, or a date and time
    with a zone) in UTC; None when it is not one. A date alone is midnight UTC."""
    match = _W3C_DATETIME.fullmatch(text.strip())
    if match is None:
        return None
    part = match.groupdict()
    zone = part["zone"]
    offset = dt.timedelta()
    if zone and zone != "Z":
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            return None
        offset = (-1 if zone[0] == "-" else 1) * dt.timedelta(hours=hours, minutes=minutes)
    try:
        when = dt.datetime(
            int(part["year"]),
            int(part["month"] or 1),
            int(part["day"] or 1),
            int(part["hour"] or 0),
            int(part["minute"] or 0),
            int(part["second"] or 0),
            int((part["fraction"] or "0")[:6].ljust(6, "0")),
            tzinfo=dt.timezone(offset),
        )
        return when.astimezone(dt.UTC)
    except (ValueError, OverflowError):  # no such day or time, or outside the years 1 to 9999 in UTC
        return None


def _decompressed(body: bytes, max_bytes: int) -> Iterator[bytes]:
    """The sitemap's bytes, inflated a bounded step at a time when gzipped; refused past max_bytes."""
    if body[:2] != GZIP_MAGIC:
        if len(body) > max_bytes:
            raise _too_large(max_bytes)
        for start in range(0, len(body), DECODE_STEP):
            yield body[start : start + DECODE_STEP]
        return
    inflater = Inflater("gzip")
    size = 0
    step = min(DECODE_STEP, max_bytes + 1)
    try:
        # Fed a step of input at a time: the inflater copies what it has not consumed on each read.
        for start in range(0, len(body), DECODE_STEP):
            inflater.feed(body[start : start + DECODE_STEP])
            while piece := inflater.read(step):
                size += len(piece)
                if size > max_bytes:
                    raise _too_large(max_bytes)
                yield piece
    except CorruptEncoding as exc:
        raise SitemapError("invalid_sitemap", f"not valid gzip: {exc}") from None


def _too_large(max_bytes: int) -> SitemapError:
    return SitemapError("sitemap_too_large", f"larger than {max_bytes} bytes decompressed")


class _Reader:
    """Tells XML from a text sitemap by the first character that is not whitespace, then feeds it."""

    def __init__(self, urls: UrlCollector) -> None:
        self._urls = urls
        self._head = b""
        self._sink: _XmlSitemap | _TextSitemap | None = None

    def feed(self, data: bytes) -> None:
        if self._sink is None:
            self._head += data
            start = self._head.removeprefix(codecs.BOM_UTF8).lstrip()
            if not start:
                if len(self._head) > MAX_LEADING_BLANK:
                    raise SitemapError("invalid_sitemap", f"starts with more than {MAX_LEADING_BLANK} blank bytes")
                return
            data, self._head = self._head, b""
            # Text sitemaps are UTF-8 (sitemaps.org): UTF-16 is XML's.
            if start[:1] == b"<" or start.startswith(_UTF16_BOMS):
                self._sink = _XmlSitemap(self._urls)  # expat reads the BOM and the declared encoding
            else:
                self._sink = _TextSitemap(self._urls)
                data = data.removeprefix(codecs.BOM_UTF8)  # sitemaps.org: text sitemaps are UTF-8
        self._sink.feed(data)

    def close(self) -> Document:
        if self._sink is None:
            raise SitemapError("invalid_sitemap", "the sitemap is empty")
        return self._sink.close()

    def document(self) -> Document:
        assert self._sink is not None, "full before anything was read"
        return self._sink.document


class _XmlSitemap:
    """A <urlset> or <sitemapindex>, parsed as it is fed. Names are matched without their prefix
    (sitemaps in the wild get namespaces wrong), and only where sitemaps.org puts them: a <loc>
    inside an <image:image> is not a page's URL."""

    def __init__(self, urls: UrlCollector) -> None:
        self._urls = urls
        self.document = Document(kind="urlset")
        self._parser = expat.ParserCreate()
        self._parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        self._parser.StartDoctypeDeclHandler = self._refuse_doctype
        self._parser.EntityDeclHandler = self._refuse_entity
        self._parser.ExternalEntityRefHandler = self._refuse_external_entity
        self._parser.StartElementHandler = self._start
        self._parser.EndElementHandler = self._end
        self._parser.CharacterDataHandler = self._characters
        self._parser.buffer_text = True  # one call per run of text, not one per line or entity
        self._depth = 0
        self._item_name = ""
        self._field = ""  # "loc" or "lastmod" while inside one, in an item
        self._text: list[str] = []
        self._text_length = 0
        self._loc: str | None = None
        self._lastmod: str | None = None
        self._listed: set[str] = set()

    def feed(self, data: bytes) -> None:
        self._parse(data, final=False)

    def close(self) -> Document:
        self._parse(b"", final=True)
        return self.document

    def _parse(self, data: bytes, *, final: bool) -> None:
        try:
            self._parser.Parse(data, final)
        except expat.ExpatError as exc:
            raise SitemapError("invalid_sitemap", f"not well-formed XML: {exc}") from None

    def _refuse_doctype(self, name: str, *_: object) -> None:
        raise SitemapError(
            "invalid_sitemap", f"has a document type declaration (<!DOCTYPE {name}>): not a sitemap, and not parsed"
        )

    def _refuse_entity(self, name: str, *_: object) -> None:
        raise SitemapError("invalid_sitemap", f"declares an entity ({name}): not parsed")

    def _refuse_external_entity(self, *_: object) -> int:
        raise SitemapError("invalid_sitemap", "refers to an external entity: not parsed")

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        self._depth += 1
        if self._depth > MAX_ELEMENT_DEPTH:
            raise SitemapError("invalid_sitemap", f"nests elements more than {MAX_ELEMENT_DEPTH} deep")
        local = name.rpartition(":")[2]
        if self._depth == 1:
            if local == "urlset":
                self.document.kind, self._item_name = "urlset", "url"
            elif local == "sitemapindex":
                self.document.kind, self._item_name = "sitemapindex", "sitemap"
            else:
                raise SitemapError("invalid_sitemap", f"not a sitemap: its root element is <{name}>")
        elif self._depth == 2 and local == self._item_name:
            self._loc = self._lastmod = None
            self._field = "item"
        elif self._depth == 3 and self._field == "item" and local in ("loc", "lastmod"):
            self._field = local
            self._text, self._text_length = [], 0

    def _characters(self, text: str) -> None:
        if self._field in ("loc", "lastmod") and self._depth == 3 and self._text_length <= MAX_ELEMENT_TEXT:
            self._text.append(text)
            self._text_length += len(text)

    def _end(self, name: str) -> None:
        if self._depth == 3 and self._field in ("loc", "lastmod"):
            # Over the bound, the text is no URL or date: keep something that will not parse as one.
            value = "".join(self._text) if self._text_length <= MAX_ELEMENT_TEXT else " "
            if self._field == "loc":
                self._loc = value
            else:
                self._lastmod = value
            self._field = "item"
        elif self._depth == 2 and self._field == "item":
            self._field = ""
            self._item()
        self._depth -= 1

    def _item(self) -> None:
        try:
            url = normalize_url((self._loc or "").strip())
        except InvalidURL:
            self.document.dropped += 1
            return
        if self.document.kind == "sitemapindex":
            if url not in self._listed and len(self._listed) < MAX_INDEX_SITEMAPS:
                self._listed.add(url)
                self.document.sitemaps.append(url)
            return
        lastmod = parse_lastmod(self._lastmod) if self._lastmod is not None else None
        if not self._urls.add(url, lastmod):
            raise _Full


class _TextSitemap:
    """One URL per line, UTF-8. A line that is not an absolute http(s) URL is dropped."""

    def __init__(self, urls: UrlCollector) -> None:
        self._urls = urls
        self.document = Document(kind="text")
        self._partial = b""
        self._skipping = False  # inside a line already too long to be a URL: not kept
        self._kept = 0

    def feed(self, data: bytes) -> None:
        *ended, rest = data.split(b"\n")
        for line in ended:
            if self._skipping:
                self.document.dropped += 1
                self._skipping = False
            else:
                self._line(self._partial + line)
            self._partial = b""
        if not self._skipping:
            self._partial += rest
            if len(self._partial) > MAX_LINE_BYTES:
                self._partial, self._skipping = b"", True

    def close(self) -> Document:
        if self._skipping:
            self.document.dropped += 1
        else:
            self._line(self._partial)
        if self.document.dropped and not self._kept:
            raise SitemapError("invalid_sitemap", "not a sitemap: no line of the text is a URL")
        return self.document

    def _line(self, raw: bytes) -> None:
        line = raw.strip()
        if not line:
            return
        try:
            url = normalize_url(line.decode("utf-8"))
        except (UnicodeDecodeError, InvalidURL):
            self.document.dropped += 1
            return
        self._kept += 1
        if not self._urls.add(url, None):
            raise _Full
