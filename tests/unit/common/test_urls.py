"""URL identity: every spelling of one resource normalizes to one URL; different resources stay apart."""

from __future__ import annotations

import pytest

from crawlfleet.common.urls import MAX_URL_LENGTH, InvalidURL, normalize_url

# The normalized URL, then spellings of the same resource.
SAME_RESOURCE: list[tuple[str, list[str]]] = [
    (
        "http://10.0.0.1/p/3",
        [
            "http://10.0.0.1/p/3",
            "http://10.0.0.1/p/./3",
            "http://10.0.0.1/p/x/../3",
            "http://10.0.0.1/p/%33",
            "http://10.0.0.1/p/x/%2e%2E/3",
            "http://0x0a.0.0.1/p/3",
            "http://0X0A.0x0.0x.0x1/p/3",
            "http://012.0.0.1/p/3",
            "http://167772161/p/3",
            "http://0xa000001/p/3",
            "http://10.1/p/3",
            "http://10.0.1/p/3",
            "http://10.0.0.1./p/3",
            "http://%31%30.0.0.1/p/3",
            "HTTP://10.0.0.1:80/p/3#frag",
            "http://10.0.0.1:/p/3",
            "http://10.0.0.1:0080/p/3",
        ],
    ),
    (
        "http://127.0.0.1/",
        # The last one in full-width digits, which IDNA maps to ASCII.
        [
            "http://0x7f.1",
            "http://0177.0.0.1/",
            "http://2130706433",
            "http://127.1/",
            "http://\uff11\uff12\uff17.0.0.1/",
        ],
    ),
    (
        "https://xn--bcher-kva.example/",
        [
            "https://bücher.example",
            "https://BÜCHER.Example:443/",
            "https://XN--BCHER-KVA.EXAMPLE/",
            "https://bücher。example/",
            "https://b%C3%BCcher.example/",
        ],
    ),
    ("https://xn--strae-oqa.de/", ["https://straße.de/"]),  # as browsers map it (UTS 46, non-transitional)
    (
        "http://example.com/",
        ["http://Example.COM", "http://example.com.:80", "http://example.com/?", "http://example.com#x"],
    ),
    ("http://[2001:db8::1]/", ["http://[2001:DB8:0:0:0:0:0:1]/", "http://[2001:0db8::0001]:80"]),
    ("http://[::ffff:a00:1]/", ["http://[::ffff:10.0.0.1]/"]),
    (
        "http://example.com/~a-b_c.d/%2F%3F%C3%A9",
        [
            "http://example.com/%7Ea%2Db%5Fc%2Ed/%2f%3f%c3%a9",
            "http://example.com/%7ea-b_c.d/%2F%3F%C3%a9",
            "http://example.com/~a-b_c.d/%2F%3Fé",
        ],
    ),
    (
        "http://example.com/a/c/",
        ["http://example.com/a/b/../c/", "http://example.com/./a/./c/.", "http://example.com/../a/c/"],
    ),
    ("http://example.com/a%7Cb%22%25", ['http://example.com/a|b"%', "http://example.com/a%7cb%22%25"]),
    (
        "http://example.com/s?q=%C3%A9&x=%2B~",
        ["http://example.com/s?q=é&x=%2b%7E", "http://example.com/s?q=%c3%a9&x=%2B~"],
    ),
    ("https://example.com:8443/x", ["HTTPS://EXAMPLE.COM:8443/x#y"]),
    ("http://shop.example/a/g", ["http://shop.example/a/b/c/./../../g"]),
    ("http://shop.example/a//c", ["http://shop.example/a//b/../c"]),
    ("http://shop.example/a/", ["http://shop.example/a/b/..", "http://shop.example/a/b/%2E%2e"]),
    # Path and query case kept, and the query's dots are data.
    ("http://shop.example/Img/A.JPG?Size=L&y=..%2F", ["HTTP://SHOP.EXAMPLE/Img/A.JPG?Size=L&y=..%2f"]),
]

# Pairs that name different resources (or that only a site could tell equal).
DIFFERENT_RESOURCES: list[tuple[str, str]] = [
    ("http://example.com/a%2Fb", "http://example.com/a/b"),  # an encoded reserved character is data
    ("http://example.com/a;b", "http://example.com/a%3Bb"),
    ("http://example.com/?a=1&b=2", "http://example.com/?b=2&a=1"),  # sorting is off by default
    ("http://example.com/?q=a+b", "http://example.com/?q=a%20b"),
    ("http://example.com/?utm_source=x", "http://example.com/"),  # tracking parameters too
    ("http://example.com/dir/", "http://example.com/dir"),
    ("http://example.com//a", "http://example.com/a"),
    ("http://example.com/A", "http://example.com/a"),
    ("http://example.com/", "https://example.com/"),
    ("http://example.com:8080/", "http://example.com/"),
    ("https://example.com:80/", "https://example.com/"),
    ("http://www.example.com/", "http://example.com/"),
    ("http://10.0.0.1/", "http://10.0.0.10/"),
    ("http://10.0.0.1/", "http://[::ffff:10.0.0.1]/"),
]

INVALID: list[tuple[str, str]] = [
    ("", "absolute http or https URL"),
    ("/relative/path", "absolute http or https URL"),
    ("//example.com/", "absolute http or https URL"),
    ("example.com/x", "absolute http or https URL"),
    ("ftp://example.com/f", "not ftp:"),
    ("javascript:alert(1)", "not javascript:"),
    ("http:example.com", "must name a host"),
    ("http:///path", "must name a host"),
    ("http://:80/", "must name a host"),
    ("http://./", "must name a host"),
    ("http://exa mple.com/", "whitespace"),
    ("http://example.com/a b", "whitespace"),
    ("http://example.com/\u00a0", "whitespace"),
    ("http://example.com/\u2028", "whitespace"),
    ("http://example.com/\u0001", "control characters (U+0001)"),
    ("http://example.com/\u007f", "control characters (U+007F)"),
    ("http://example.com/\u001b[31m", "control characters (U+001B)"),
    ("http://example.com/\u0000", "control characters (U+0000)"),
    ("http://example.com/\u0085", "control characters (U+0085)"),
    ("http://example.com/a\tb", "control characters (U+0009)"),
    ("http://example.com/a\\b", "backslash"),
    ("http://evil.example\\@example.com/", "backslash"),
    ("http://user:pw@example.com/", "credentials"),
    ("http://@example.com/", "credentials"),
    ("http://example.com:99999/", "port outside"),
    ("http://example.com:0/", "port outside"),
    ("http://example.com:8o/", "invalid port"),
    ("http://example.com:80:80/", "invalid port"),
    ("http://[::1/", "unclosed IPv6"),
    ("http://[::1]x/", "invalid authority"),
    ("http://[fe80::1%25eth0]/", "IPv6 zone"),
    ("http://[1.2.3]/", "invalid IPv6"),
    ("http://1.2.3.4.5/", "not an IPv4 address"),
    ("http://256.0.0.1/", "not an IPv4 address"),
    ("http://4294967296/", "not an IPv4 address"),
    ("http://08.0.0.1/", "not an IPv4 address"),
    ("http://example.0x10/", "not an IPv4 address"),
    ("http://a..b/", "invalid host name"),
    ("http://ex!ample.com/", "invalid host name"),
    ("http://ex%zzample.com/", "invalid host name"),
    ("http://ex%3Aample.com/", "invalid host name"),
    ("http://ex%FFample.com/", "not UTF-8"),
    ("http://☃.example/", "invalid international host name"),
    ("http://example.com/\ud800", "not valid Unicode"),
    ("http://example.com/" + "a" * MAX_URL_LENGTH, f"longer than {MAX_URL_LENGTH} characters"),
    ("http://example.com/" + "é" * 1000, "once normalized"),
]


@pytest.mark.parametrize(
    ("normal", "spelling"),
    [(normal, spelling) for normal, spellings in SAME_RESOURCE for spelling in spellings],
)
def test_spellings_of_one_resource_normalize_to_one_url(normal: str, spelling: str) -> None:
    assert normalize_url(spelling) == normal


@pytest.mark.parametrize("normal", [normal for normal, _ in SAME_RESOURCE])
def test_normalized_urls_are_fixed_points(normal: str) -> None:
    assert normalize_url(normal) == normal


@pytest.mark.parametrize(("first", "second"), DIFFERENT_RESOURCES)
def test_different_resources_stay_distinct(first: str, second: str) -> None:
    assert normalize_url(first) != normalize_url(second)


@pytest.mark.parametrize(("url", "reason"), INVALID, ids=[repr(u)[:40] for u, _ in INVALID])
def test_urls_that_name_no_web_resource_are_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(InvalidURL) as caught:
        normalize_url(url)
    assert reason in caught.value.reason
    assert isinstance(caught.value, ValueError)


def test_drop_tracking_removes_tracking_parameters_only() -> None:
    url = "http://example.com/p?utm_source=news&id=7&fbclid=abc&UTM_Medium=x&utm%5Fcampaign=y&gclid=1&page=2#f"
    assert normalize_url(url, drop_tracking=True) == "http://example.com/p?id=7&page=2"
    assert normalize_url("http://example.com/p?utm_source=a&gclid=b", drop_tracking=True) == "http://example.com/p"
    assert normalize_url(url) == "http://example.com/p" + url[url.index("?") : url.index("#")].replace("%5F", "_")


def test_sort_query_orders_by_name_keeping_the_order_of_repeated_names() -> None:
    assert normalize_url("http://example.com/?b=2&a=1&b=1&c", sort_query=True) == "http://example.com/?a=1&b=2&b=1&c"
    assert normalize_url("http://example.com/?b=2&a=1") == "http://example.com/?b=2&a=1"


def test_both_flags_together() -> None:
    url = "http://example.com/?z=1&utm_term=x&a=2"
    assert normalize_url(url, drop_tracking=True, sort_query=True) == "http://example.com/?a=2&z=1"
