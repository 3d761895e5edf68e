from __future__ import annotations

import datetime as dt

import httpx
import pytest

from worker.errors import JobError
from worker.handlers.scrape import (
    MAX_RETRY_AFTER,
    decode_body,
    extract_title,
    parse_retry_after,
    raise_for_status,
    scrape_result,
)

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


def response(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> httpx.Response:
    return httpx.Response(status, headers=headers, content=body, request=httpx.Request("GET", "https://example.com/a"))


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
        raise_for_status(response(status))
    assert (exc_info.value.error_type, exc_info.value.retryable) == (error_type, retryable)


def test_429_carries_retry_after() -> None:
    with pytest.raises(JobError) as exc_info:
        raise_for_status(response(429, {"Retry-After": "30"}))
    assert exc_info.value.retry_after == 30.0


def test_success_statuses_pass() -> None:
    raise_for_status(response(200))
    raise_for_status(response(204))


def test_title_extraction() -> None:
    assert extract_title("<html><head><TITLE lang=en>\n Caf&eacute;  &amp; more\n</title>") == "Café & more"
    assert extract_title("<p>no title</p>") == ""
    assert len(extract_title("<title>" + "x" * 5000 + "</title>")) == 1000


def test_scrape_result_reads_title_of_html_only() -> None:
    body = "<title>Hé</title>".encode("latin-1")
    result = scrape_result(response(200, {"content-type": "text/html; charset=latin-1"}, body), body)
    assert (result.title, result.status_code, result.body_bytes) == ("Hé", 200, len(body))
    assert result.final_url == "https://example.com/a"
    plain = scrape_result(response(200, {"content-type": "text/plain"}, b"<title>x</title>"), b"<title>x</title>")
    assert plain.title == ""


def test_decode_body_survives_unknown_charsets() -> None:
    assert decode_body(b"ok", "no-such-charset") == "ok"
