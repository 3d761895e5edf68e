from __future__ import annotations

import pytest

from crawlfleet.coordinator.api.validation import normalize_url
from crawlfleet.coordinator.errors import InvalidArgument


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("HTTP://Example.COM", "http://example.com/"),
        ("https://example.com:443/a?b=2&a=1#frag", "https://example.com/a?b=2&a=1"),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
        ("http://bücher.example/", "http://xn--bcher-kva.example/"),
        ("http://[::1]:80/", "http://[::1]/"),
        ("http://127.0.0.1:8000/p", "http://127.0.0.1:8000/p"),
    ],
)
def test_normalize_url(raw: str, normal: str) -> None:
    assert normalize_url(raw, "url") == normal


@pytest.mark.parametrize("raw", ["", "ftp://x/", "//example.com/", "http://", "http://a b/", "http://u:p@h/"])
def test_bad_urls_name_the_field(raw: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalize_url(raw, "jobs[2].scrape.url")
    assert caught.value.field == "jobs[2].scrape.url"
