from __future__ import annotations

import pytest

from crawlfleet.worker.pipeline.urls import normalize_url


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("http://shop.example/img/a.jpg", "http://shop.example/img/a.jpg"),
        ("HTTP://Shop.Example/img/a.jpg", "http://shop.example/img/a.jpg"),
        ("http://shop.example:80/img/a.jpg", "http://shop.example/img/a.jpg"),
        ("https://shop.example:443/a", "https://shop.example/a"),
        ("https://shop.example:80/a", "https://shop.example:80/a"),  # not https's default
        ("http://shop.example:8080/a", "http://shop.example:8080/a"),
        ("http://shop.example:/a", "http://shop.example/a"),  # an empty port is the default
        ("http://shop.example:0080/a", "http://shop.example/a"),
        ("http://shop.example/a.jpg#zoom", "http://shop.example/a.jpg"),
        ("http://shop.example", "http://shop.example/"),
        ("http://shop.example?q=1", "http://shop.example/?q=1"),
        ("http://shop.example/img/./a.jpg", "http://shop.example/img/a.jpg"),
        ("http://shop.example/x/../img/a.jpg", "http://shop.example/img/a.jpg"),
        ("http://shop.example/a/b/c/./../../g", "http://shop.example/a/g"),
        ("http://shop.example/../../a", "http://shop.example/a"),  # never above the root
        ("http://shop.example/a/b/..", "http://shop.example/a/"),
        ("http://shop.example/a/b/.", "http://shop.example/a/b/"),
        ("http://shop.example/a//b/../c", "http://shop.example/a//c"),
        ("http://shop.example/a/%2e%2E/b", "http://shop.example/b"),  # escaped dots are dots
        ("http://shop.example/%7euser/%c3%a9", "http://shop.example/~user/%C3%A9"),
        ("http://shop.example/a%2fb", "http://shop.example/a%2Fb"),  # an escaped slash stays escaped
        ("http://shop.example/Img/A.JPG?Size=L", "http://shop.example/Img/A.JPG?Size=L"),  # path and query case kept
        ("http://shop.example/a?x=1&y=..%2F", "http://shop.example/a?x=1&y=..%2F"),
        ("http://User:Pw@Shop.example:80/a", "http://User:Pw@shop.example/a"),
        ("http://[2001:DB8::1]:80/a", "http://[2001:db8::1]/a"),
        ("http://[2001:db8::1]:8080/a", "http://[2001:db8::1]:8080/a"),
        ("http://shop.example:99999/a", "http://shop.example:99999/a"),  # does not parse: as written
        ("/img/a.jpg", "/img/a.jpg"),  # not absolute: as written
    ],
)
def test_normalize_url(url: str, normalized: str) -> None:
    assert normalize_url(url) == normalized


def test_normalizing_twice_changes_nothing() -> None:
    url = "HTTP://Shop.Example:80/a/./b/../%7ec#x"
    assert normalize_url(normalize_url(url)) == normalize_url(url) == "http://shop.example/a/~c"
