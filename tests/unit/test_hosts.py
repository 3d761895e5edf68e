"""Hosts as the politeness key, and the patterns of host policies."""

from __future__ import annotations

import pytest

from crawlfleet.common.hosts import host_of, is_host, is_host_pattern, pattern_matches
from crawlfleet.common.urls import normalize_url


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("HTTP://Shop.Example:80/a", "shop.example"),
        ("https://shop.example:443/", "shop.example"),
        ("https://shop.example:8443/p", "shop.example:8443"),
        ("http://[::1]:8080/", "[::1]:8080"),
        ("http://bücher.example/", "xn--bcher-kva.example"),
        ("http://0x7f.1/", "127.0.0.1"),
        ("http://www.shop.example/", "www.shop.example"),
    ],
)
def test_the_host_is_the_normalized_name_with_a_non_default_port(url: str, host: str) -> None:
    assert host_of(normalize_url(url)) == host
    assert is_host(host)


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("shop.example", "shop.example", True),
        ("shop.example", "shop.example:8443", True),
        ("shop.example:8443", "shop.example", False),
        ("shop.example:8443", "shop.example:8443", True),
        ("shop.example", "www.shop.example", False),
        ("*.shop.example", "shop.example", True),
        ("*.shop.example", "www.shop.example", True),
        ("*.shop.example", "a.b.shop.example:81", True),
        ("*.shop.example", "myshop.example", False),
        ("*.shop.example:81", "a.shop.example:82", False),
        ("[::1]", "[::1]:8080", True),
    ],
)
def test_patterns(pattern: str, host: str, matches: bool) -> None:
    assert is_host_pattern(pattern)
    assert pattern_matches(pattern, host) is matches


@pytest.mark.parametrize("pattern", ["", "*", "*.", "shop..example", "Shop.example", "a/b", "*.a.*.b", "x" * 300])
def test_malformed_patterns(pattern: str) -> None:
    assert not is_host_pattern(pattern)
