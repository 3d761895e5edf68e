from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import httpx
import pytest

from crawlfleet.worker.errors import JobError
from crawlfleet.worker.handlers.scrape import MAX_RETRY_AFTER, check_html, check_status, parse_retry_after
from crawlfleet.worker.pipeline import fetch
from crawlfleet.worker.pipeline.fetch import FetchedResponse, declared_charset

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("Fri, 02 Jan 2026 03:05:05 GMT", 60.0),
        ("Fri, 02 Jan 2026 03:00:00 GMT", 0.0),  # in the past
        ("soon", None),
        ("-5", None),
        ("99999999", MAX_RETRY_AFTER),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("status", "error_type", "retryable"),
    [
        (500, "http_5xx", True),
        (503, "http_5xx", True),
        (429, "http_429", True),
        (404, "http_4xx", False),
        (410, "http_4xx", False),
        (403, "http_4xx", False),
    ],
)
def test_error_statuses(status: int, error_type: str, retryable: bool) -> None:
    with pytest.raises(JobError) as exc_info:
        check_status(status, {}, "https://example.com/a")
    assert (exc_info.value.error_type, exc_info.value.retryable) == (error_type, retryable)


def test_429_carries_retry_after() -> None:
    with pytest.raises(JobError) as exc_info:
        check_status(429, {"retry-after": "30"}, "https://example.com/a")
    assert exc_info.value.retry_after == 30.0


def test_success_statuses_pass() -> None:
    check_status(200, {}, "u")
    check_status(204, {}, "u")


@pytest.mark.parametrize(
    ("content_type", "head"), [("text/html", b""), ("application/xhtml+xml", b""), ("", b" <!doctype html>")]
)
def test_html_passes(content_type: str, head: bytes) -> None:
    check_html(content_type, head, "u")


@pytest.mark.parametrize(
    ("content_type", "head"), [("application/pdf", b"%PDF"), ("image/png", b"\x89PNG"), ("", b"{}")]
)
def test_non_html_is_final(content_type: str, head: bytes) -> None:
    with pytest.raises(JobError) as exc_info:
        check_html(content_type, head, "u")
    assert (exc_info.value.error_type, exc_info.value.retryable) == ("non_html", False)


def fetched(headers: dict[str, str], body: bytes) -> FetchedResponse:
    return FetchedResponse(url="https://example.com/", status=200, headers=httpx.Headers(headers), body=body)


def test_charset_from_header_then_meta_then_utf8() -> None:
    assert fetched({"content-type": "text/html; charset=ISO-8859-1"}, b"").charset == "iso-8859-1"
    assert fetched({}, b'<html><head><meta charset="windows-1251">').charset == "windows-1251"
    meta = b'<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">'
    assert fetched({}, meta).charset == "shift_jis"
    assert fetched({}, b"<p>x</p>").charset == "utf-8"


def test_the_charset_is_worked_out_once_per_response_and_a_header_parsed_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    declared_charset.cache_clear()
    response = fetched({"content-type": "text/html; charset=ISO-8859-1"}, "Café".encode("latin-1"))
    sniffs: list[bytes] = []
    real_search = fetch._META_CHARSET.search
    monkeypatch.setattr(fetch, "_META_CHARSET", SniffCounter(real_search, sniffs))
    nameless = fetched({}, b"<p>x</p>")
    assert (response.charset, response.text(), response.charset) == ("iso-8859-1", "Café", "iso-8859-1")
    assert (nameless.text(), nameless.charset) == ("<p>x</p>", "utf-8")
    assert fetched({"content-type": "text/html; charset=ISO-8859-1"}, b"").charset == "iso-8859-1"
    assert declared_charset.cache_info().misses == 2  # the header with a charset, and no header
    assert len(sniffs) == 1  # the page without a header looked for <meta charset> once


class SniffCounter:
    def __init__(self, search: Callable[[bytes], object], calls: list[bytes]) -> None:
        self._search = search
        self._calls = calls

    def search(self, head: bytes) -> object:
        self._calls.append(head)
        return self._search(head)


def test_text_decodes_with_the_charset_and_survives_unknown_ones() -> None:
    assert fetched({"content-type": "text/html; charset=latin-1"}, "Café".encode("latin-1")).text() == "Café"
    assert fetched({"content-type": "text/html; charset=no-such"}, b"ok").text() == "ok"
