"""Sitemap parsing: url sets, indexes, text, gzip, and the hostile cases (bombs, entities, depth)."""

from __future__ import annotations

import datetime as dt
import gzip
import time
import tracemalloc

import pytest

from crawlfleet.worker.pipeline.sitemaps import (
    ENTRY_OVERHEAD_BYTES,
    MAX_ELEMENT_DEPTH,
    Entry,
    SitemapError,
    UrlCollector,
    is_root,
    parse_lastmod,
    parse_sitemap,
    robots_sitemaps,
)

MIB = 1024 * 1024
NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
UTC = dt.UTC


def urlset(*items: str, head: str = '<?xml version="1.0" encoding="UTF-8"?>') -> bytes:
    return f"{head}<urlset {NS}>{''.join(items)}</urlset>".encode()


def url(loc: str, lastmod: str | None = None, extra: str = "") -> str:
    return f"<url><loc>{loc}</loc>" + (f"<lastmod>{lastmod}</lastmod>" if lastmod else "") + extra + "</url>"


def index(*locs: str) -> bytes:
    items = "".join(f"<sitemap><loc>{loc}</loc><lastmod>2024-01-01</lastmod></sitemap>" for loc in locs)
    return f'<?xml version="1.0"?><sitemapindex {NS}>{items}</sitemapindex>'.encode()


def collector(limit: int = 50_000, budget: int = 8 * MIB) -> UrlCollector:
    return UrlCollector(limit=limit, budget=budget)


def read(body: bytes, *, limit: int = 50_000, max_bytes: int = 50 * MIB) -> tuple[list[Entry], UrlCollector]:
    urls = collector(limit)
    parse_sitemap(body, urls, max_bytes=max_bytes)
    return urls.entries, urls


def refused(body: bytes, *, max_bytes: int = 50 * MIB) -> SitemapError:
    with pytest.raises(SitemapError) as caught:
        parse_sitemap(body, collector(), max_bytes=max_bytes)
    return caught.value


def test_a_url_set_lists_its_urls_normalized_with_their_lastmod() -> None:
    image = "<image:image><image:loc>https://example.com/photo.jpg</image:loc></image:image>"
    body = urlset(
        url(" https://Example.COM:443/a?x=1&amp;y=2#top\n", "2024-05-06T07:08:09+02:00", image),
        url("https://example.com/b", "2024-05-06"),
        url("https://example.com/c", "yesterday"),
        url("http://example.com/d", "2024-02-30"),
    ).replace(b"<urlset ", b'<urlset xmlns:image="http://www.google.com/schemas/sitemap-image/1.1" ')
    urls = collector()
    document = parse_sitemap(body, urls, max_bytes=MIB)
    assert document.kind == "urlset" and document.sitemaps == [] and document.dropped == 0
    assert urls.entries == [
        Entry("https://example.com/a?x=1&y=2", dt.datetime(2024, 5, 6, 5, 8, 9, tzinfo=UTC)),
        Entry("https://example.com/b", dt.datetime(2024, 5, 6, tzinfo=UTC)),
        Entry("https://example.com/c", None),  # an invalid lastmod is unset, the URL kept
        Entry("http://example.com/d", None),
    ]
    assert not urls.truncated


def test_prefixes_and_missing_namespaces_are_read_alike() -> None:
    plain = b"<urlset><url><loc>https://example.com/1</loc></url></urlset>"
    prefixed = b'<sm:urlset xmlns:sm="http://www.sitemaps.org/schemas/sitemap/0.9"><sm:url><sm:loc>https://example.com/1</sm:loc></sm:url></sm:urlset>'
    assert read(plain)[0] == read(prefixed)[0] == [Entry("https://example.com/1")]


@pytest.mark.parametrize(
    "loc",
    [
        "/relative/path",
        "page.html",
        "//example.com/no-scheme",
        "ftp://example.com/file",
        "mailto:someone@example.com",
        "javascript:alert(1)",
        "https://user:secret@example.com/",
        "https://exa mple.com/",
        "https://example.com/" + "a" * 3000,
        "",
    ],
)
def test_relative_and_invalid_urls_are_dropped_and_counted(loc: str) -> None:
    body = urlset(url(loc.replace("&", "&amp;")), url("https://example.com/kept"))
    urls = collector()
    document = parse_sitemap(body, urls, max_bytes=MIB)
    assert urls.entries == [Entry("https://example.com/kept")]
    assert document.dropped == 1


def test_an_item_without_loc_is_dropped() -> None:
    urls = collector()
    document = parse_sitemap(urlset("<url><lastmod>2024-01-01</lastmod></url>"), urls, max_bytes=MIB)
    assert urls.entries == [] and document.dropped == 1


def test_each_url_is_listed_once_in_its_first_place() -> None:
    entries, _ = read(
        urlset(url("https://example.com/a", "2024-01-01"), url("https://example.com/b"), url("HTTPS://example.com/a"))
    )
    assert entries == [
        Entry("https://example.com/a", dt.datetime(2024, 1, 1, tzinfo=UTC)),
        Entry("https://example.com/b"),
    ]


def test_an_index_lists_its_sitemaps_and_no_urls() -> None:
    urls = collector()
    document = parse_sitemap(
        index(
            "https://example.com/s1.xml.gz", "https://example.com/s2.xml", "https://example.com/s1.xml.gz", "/rel.xml"
        ),
        urls,
        max_bytes=MIB,
    )
    assert document.kind == "sitemapindex"
    assert document.sitemaps == ["https://example.com/s1.xml.gz", "https://example.com/s2.xml"]
    assert document.dropped == 1 and urls.entries == []


def test_gzip_is_told_by_its_magic_bytes() -> None:
    body = urlset(url("https://example.com/zipped"))
    assert read(gzip.compress(body))[0] == read(body)[0] == [Entry("https://example.com/zipped")]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "iso-8859-1"])
def test_xml_in_any_encoding_expat_reads(encoding: str) -> None:
    text = f'<?xml version="1.0" encoding="{encoding.removesuffix("-sig").removesuffix("-be")}"?>'
    text += f"<urlset {NS}><url><loc>https://example.com/caf\u00e9</loc></url></urlset>"
    body = text.encode(encoding)
    if encoding == "utf-16-be":
        body = b"\xfe\xff" + body
    assert read(body)[0] == [Entry("https://example.com/caf%C3%A9")]


def test_a_text_sitemap_lists_one_url_per_line() -> None:
    body = "\ufeffhttps://example.com/1\r\n\n  https://example.com/2  \nnot a URL\n/relative\nhttps://example.com/é".encode()
    urls = collector()
    document = parse_sitemap(gzip.compress(body), urls, max_bytes=MIB)
    assert document.kind == "text" and document.dropped == 2
    assert [e.url for e in urls.entries] == [
        "https://example.com/1",
        "https://example.com/2",
        "https://example.com/%C3%A9",
    ]


def test_a_text_sitemap_drops_overlong_lines_without_holding_them() -> None:
    body = b"https://example.com/1\n" + b"x" * (3 * MIB) + b"\nhttps://example.com/2"
    urls = collector()
    document = parse_sitemap(body, urls, max_bytes=4 * MIB)
    assert [e.url for e in urls.entries] == ["https://example.com/1", "https://example.com/2"]
    assert document.dropped == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"  \n\t ", "empty"),
        (b"<html><body>Not found</body></html>", "root element is <html>"),
        (b"<!DOCTYPE html><html><body>Not found</body></html>", "document type declaration"),
        (b"<!doctype html><html><body>Not found</body></html>", "not well-formed"),
        (b"<rss version='2.0'><channel></channel></rss>", "root element is <rss>"),
        (b"<urlset><url><loc>https://example.com/</loc></url>", "not well-formed"),
        (b"<urlset><url><loc>https://example.com/</url></urlset>", "not well-formed"),
        (gzip.compress(b"<urlset></urlset>")[:-12] + b"garbage-garbage", "not"),
        (b"\x1f\x8bnot gzip at all", "not valid gzip"),
        (b"just some words\nand more words\n", "no line of the text is a URL"),
        (b" " * (70 * 1024), "blank"),
    ],
)
def test_what_is_no_sitemap_is_refused_with_a_reason(body: bytes, message: str) -> None:
    error = refused(body)
    assert error.error_type == "invalid_sitemap"
    assert message in error.message


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE urlset [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<urlset><url><loc>https://example.com/&secret;</loc></url></urlset>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE urlset SYSTEM "http://127.0.0.1:9/evil.dtd">
<urlset><url><loc>https://example.com/</loc></url></urlset>"""
PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE urlset [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x"> %remote;]>
<urlset/>"""
BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(b'<!ENTITY lol%d "%s">' % (n, (b"&lol%d;" % (n - 1) if n > 1 else b"&lol;") * 10) for n in range(1, 10))
    + b"]><urlset><url><loc>https://example.com/&lol9;</loc></url></urlset>"
)


@pytest.mark.parametrize("body", [XXE, EXTERNAL_DTD, PARAMETER_ENTITY, BILLION_LAUGHS], ids=["xxe", "dtd", "pe", "lol"])
def test_entities_and_dtds_are_refused_before_anything_is_expanded(body: bytes) -> None:
    started = time.process_time()
    error = refused(body)
    assert error.error_type == "invalid_sitemap" and "document type declaration" in error.message
    assert time.process_time() - started < 5  # a generous bound: an expanded billion laughs takes far longer


def test_an_undeclared_entity_is_not_well_formed() -> None:
    assert "not well-formed" in refused(b"<urlset><url><loc>https://example.com/&nope;</loc></url></urlset>").message


def test_deep_nesting_is_refused() -> None:
    deep = b"<urlset><url>" + b"<a>" * MAX_ELEMENT_DEPTH + b"</a>" * MAX_ELEMENT_DEPTH + b"</url></urlset>"
    assert "nests elements" in refused(deep).message


def test_a_sitemap_past_the_cap_is_refused() -> None:
    body = urlset(*(url(f"https://example.com/{n}") for n in range(2000)))
    assert refused(body, max_bytes=len(body) - 1).error_type == "sitemap_too_large"
    assert refused(gzip.compress(body), max_bytes=len(body) - 1).error_type == "sitemap_too_large"
    assert len(read(gzip.compress(body), max_bytes=len(body))[0]) == 2000


def sitemap_bomb(inflated: int) -> bytes:
    """`inflated` bytes of a url set's blank space, as gzip members laid end to end: about 1 KiB per MiB."""
    member = gzip.compress(b" " * MIB, compresslevel=9)
    return gzip.compress(b"<urlset>") + member * (inflated // MIB) + gzip.compress(b"</urlset>")


def test_a_gzip_bomb_is_refused_in_bounded_memory() -> None:
    bomb = sitemap_bomb(1024 * MIB)  # 1 GiB inflated, about 1 MiB here
    assert len(bomb) < 2 * MIB
    tracemalloc.start()
    try:
        error = refused(bomb, max_bytes=4 * MIB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.error_type == "sitemap_too_large"
    assert peak < 4 * MIB, f"peak {peak / MIB:.1f} MiB refusing a 1 GiB sitemap bomb with a 4 MiB cap"


def test_the_url_limit_stops_reading_and_marks_truncated() -> None:
    body = urlset(*(url(f"https://example.com/{n}") for n in range(100)))
    urls = collector(limit=10)
    parse_sitemap(body, urls, max_bytes=MIB)
    assert [e.url for e in urls.entries] == [f"https://example.com/{n}" for n in range(10)]
    assert urls.truncated


def test_a_sitemap_of_exactly_the_limit_is_not_truncated() -> None:
    body = urlset(*(url(f"https://example.com/{n}") for n in range(10)), url("https://example.com/0"))
    _, urls = read(body, limit=10)
    assert len(urls.entries) == 10 and not urls.truncated


def test_the_byte_budget_bounds_long_urls() -> None:
    long_url = "https://example.com/" + "p" * 1900
    body = urlset(*(url(f"{long_url}{n}") for n in range(50)))
    urls = collector(budget=10 * (len(long_url) + 2 + ENTRY_OVERHEAD_BYTES))
    parse_sitemap(body, urls, max_bytes=MIB)
    assert len(urls.entries) == 10 and urls.truncated


def test_the_limit_spans_sitemaps() -> None:
    urls = collector(limit=3)
    parse_sitemap(urlset(url("https://example.com/1"), url("https://example.com/2")), urls, max_bytes=MIB)
    parse_sitemap(b"https://example.com/2\nhttps://example.com/3\nhttps://example.com/4\n", urls, max_bytes=MIB)
    assert [e.url for e in urls.entries] == [f"https://example.com/{n}" for n in (1, 2, 3)] and urls.truncated


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024", dt.datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-05", dt.datetime(2024, 5, 1, tzinfo=UTC)),
        (" 2024-05-06\n", dt.datetime(2024, 5, 6, tzinfo=UTC)),
        ("2024-05-06T07:08Z", dt.datetime(2024, 5, 6, 7, 8, tzinfo=UTC)),
        ("2024-05-06T07:08:09-05:30", dt.datetime(2024, 5, 6, 12, 38, 9, tzinfo=UTC)),
        ("2024-05-06T07:08:09.5+01:00", dt.datetime(2024, 5, 6, 6, 8, 9, 500_000, tzinfo=UTC)),
        ("2024-05-06T07:08:09.123456789Z", dt.datetime(2024, 5, 6, 7, 8, 9, 123_456, tzinfo=UTC)),
        ("2024-05-06T07:08:09", None),  # a time needs its zone
        ("2024-05-06 07:08:09Z", None),
        ("2024-5-6", None),
        ("2024-02-30", None),
        ("2024-05-06T24:00Z", None),
        ("2024-05-06T07:08+24:00", None),
        ("0000-01-01", None),
        ("0001-01-01T00:30+01:00", None),  # before the year 1 in UTC
        ("9999-12-31T23:59-01:00", None),  # after the year 9999 in UTC
        ("May 6, 2024", None),
        ("", None),
        ("\uff12\uff10\uff12\uff14-05-06", None),  # only ASCII digits
    ],
)
def test_lastmod_is_a_w3c_datetime_or_unset(text: str, expected: dt.datetime | None) -> None:
    assert parse_lastmod(text) == expected


def test_robots_txt_sitemap_lines_are_read_from_any_group() -> None:
    robots = (
        "User-agent: *\nDisallow: /private\nSitemap: https://example.com/a.xml\n\n"
        "user-agent: other\nSITEMAP:https://example.com/b.xml.gz   # the news\n"
        "# Sitemap: https://example.com/commented.xml\nsitemap:\nNot-sitemap: https://example.com/c.xml\n"
    )
    assert robots_sitemaps(robots) == ["https://example.com/a.xml", "https://example.com/b.xml.gz"]


@pytest.mark.parametrize(
    ("url", "root"),
    [
        ("https://example.com/", True),
        ("https://example.com:8443/", True),
        ("https://example.com/?page=1", False),
        ("https://example.com/sitemap.xml", False),
        ("https://example.com/blog/", False),
    ],
)
def test_a_root_is_the_slash_path_without_a_query(url: str, root: bool) -> None:
    assert is_root(url) is root
