from __future__ import annotations

import pytest

from crawlfleet.coordinator.api.validation import normalize_target_url
from crawlfleet.coordinator.errors import InvalidArgument


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("HTTP://Example.COM", "http://example.com/"),
        ("https://example.com:443/a?b=2&a=1#frag", "https://example.com/a?b=2&a=1"),
        ("http://bücher.example/", "http://xn--bcher-kva.example/"),
        ("http://0x7f.1:8000/p/./q/../%7E", "http://127.0.0.1:8000/p/~"),
    ],
)
def test_target_url_is_the_normalized_url(raw: str, normal: str) -> None:
    assert normalize_target_url(raw, "url") == normal


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "is required"),
        ("ftp://x/", "http or https"),
        ("http://", "must name a host"),
        ("http://a b/", "whitespace"),
        ("http://u:p@h/", "credentials"),
        ("http://h/\u001b", "control characters (U+001B)"),
    ],
)
def test_bad_urls_name_the_field_and_the_reason(raw: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalize_target_url(raw, "jobs[2].scrape.url")
    assert caught.value.field == "jobs[2].scrape.url"
    assert str(caught.value).startswith("jobs[2].scrape.url: ") and message in str(caught.value)
