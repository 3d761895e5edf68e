from __future__ import annotations

import email.utils

import pytest

from crawlfleet.worker.pipeline.freshness import cache_directives, reuse_lifetime

NOW = 1_800_000_000.0
CAP = 600.0


def http_date(seconds: float) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "lifetime"),
    [
        ({"cache-control": "max-age=60"}, 60.0),
        ({"cache-control": "public, max-age=31536000"}, CAP),  # a server's "a year" is the worker's cap
        ({"cache-control": "max-age=60, s-maxage=30"}, 30.0),  # the shared cache's own lifetime first
        ({"cache-control": "no-cache, max-age=60"}, 0.0),  # kept, but asked about every time
        ({"cache-control": "max-age=soon"}, 0.0),
        ({"expires": http_date(NOW + 120), "date": http_date(NOW)}, 120.0),
        ({"expires": http_date(NOW - 5), "date": http_date(NOW)}, 0.0),
        ({"expires": "0"}, 0.0),  # a malformed date is in the past
        ({"last-modified": http_date(NOW - 1000)}, 100.0),  # a tenth of its age
        ({"last-modified": http_date(NOW - 100_000)}, CAP),
        ({}, CAP),
    ],
)
def test_lifetime(headers: dict[str, str], lifetime: float) -> None:
    assert reuse_lifetime(headers, now=NOW, cap=CAP) == pytest.approx(lifetime)


def test_no_store_is_never_kept() -> None:
    assert reuse_lifetime({"cache-control": "No-Store, max-age=60"}, now=NOW, cap=CAP) is None


def test_directives_are_parsed_case_insensitively_with_quoted_values() -> None:
    assert cache_directives('Max-Age="30", private') == {"max-age": "30", "private": ""}
