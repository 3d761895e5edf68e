"""The ``scrape`` kind: a plain HTTP fetch (the browser path comes later).

Redirects are followed by hand, so that each hop's destination passes the egress guard first.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import html
import re

import httpx
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2

from worker.errors import JobError
from worker.handlers.context import JobContext
from worker.handlers.egress import check_host

MAX_REDIRECTS = 10
MAX_RETRY_AFTER = 24 * 3600.0  # a server asking for more is not taken at its word
MAX_TITLE_CHARS = 1000
TITLE_SCAN_CHARS = 1024 * 1024
_TITLE_RE = re.compile(r"<title\b[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_HTML_TYPES = ("text/html", "application/xhtml+xml")


async def run_scrape(job: pb.LeasedJob, ctx: JobContext) -> jobs_pb2.JobResult:
    """Fetches ``spec.scrape.url`` and reports status, final URL, title, content type and size."""
    spec = job.spec.scrape
    timeout = ctx.settings.http_timeout
    if spec.HasField("timeout") and spec.timeout.ToNanoseconds() > 0:
        timeout = spec.timeout.ToNanoseconds() / 1e9
    if spec.render not in (jobs_pb2.RENDER_MODE_UNSPECIFIED, jobs_pb2.RENDER_MODE_HTTP):
        ctx.log.debug("render mode %s not supported yet, fetching over plain HTTP", spec.render)
    try:
        async with asyncio.timeout(timeout):
            result = await fetch(ctx, spec.url, timeout)
    except TimeoutError as exc:
        raise JobError(f"fetch took longer than {timeout:g}s", error_type="timeout", retryable=True) from exc
    return jobs_pb2.JobResult(scrape=result)


async def fetch(ctx: JobContext, url: str, io_timeout: float) -> jobs_pb2.ScrapeResult:
    """GETs ``url``, following up to ``MAX_REDIRECTS`` redirects; raises ``JobError`` on failure."""
    try:
        request = ctx.http.build_request("GET", url, timeout=io_timeout)
    except httpx.InvalidURL as exc:
        raise JobError(f"invalid URL {url!r}: {exc}", error_type="invalid_url", retryable=False) from exc
    try:
        for hop in range(MAX_REDIRECTS + 1):
            if request.url.scheme not in ("http", "https"):
                raise JobError(f"unsupported URL scheme in {request.url}", error_type="invalid_url", retryable=False)
            port = request.url.port or (443 if request.url.scheme == "https" else 80)
            await check_host(request.url.host, port, allow_loopback=ctx.settings.allow_loopback)
            response = await ctx.http.send(request, stream=True)
            try:
                if response.next_request is not None:
                    if hop == MAX_REDIRECTS:
                        raise JobError(
                            f"more than {MAX_REDIRECTS} redirects",
                            error_type="too_many_redirects",
                            retryable=False,
                        )
                    request = response.next_request
                    continue
                raise_for_status(response)
                body = await read_capped(response, ctx.settings.max_body_bytes)
                return scrape_result(response, body)
            finally:
                await response.aclose()
    except httpx.UnsupportedProtocol as exc:
        raise JobError(str(exc), error_type="invalid_url", retryable=False) from exc
    except httpx.TimeoutException as exc:
        raise JobError(f"timeout: {exc!r}", error_type="timeout", retryable=True) from exc
    except httpx.ConnectError as exc:
        raise JobError(f"cannot connect: {exc}", error_type="connect_error", retryable=True) from exc
    except (httpx.TransportError, httpx.DecodingError) as exc:
        raise JobError(f"transport error: {exc!r}", error_type="transport_error", retryable=True) from exc
    raise AssertionError("unreachable: the loop returns or raises")


def raise_for_status(response: httpx.Response) -> None:
    """Maps an error status to a ``JobError``: 5xx and 429 are retried, other 4xx are not."""
    code = response.status_code
    if code < 400:
        return
    message = f"HTTP {code} from {response.url}"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if code == 429:
        raise JobError(message, error_type="http_429", retryable=True, retry_after=retry_after)
    if code >= 500:
        raise JobError(message, error_type="http_5xx", retryable=True, retry_after=retry_after)
    raise JobError(message, error_type="http_4xx", retryable=False)


async def read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """Reads the (decoded) body, refusing more than ``max_bytes`` without reading it all."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(max_bytes: int) -> JobError:
    """The error of a body over the cap: the page will not shrink on a retry."""
    return JobError(f"body larger than {max_bytes} bytes", error_type="body_too_large", retryable=False)


def scrape_result(response: httpx.Response, body: bytes) -> jobs_pb2.ScrapeResult:
    """The result message of a fetched page."""
    content_type = response.headers.get("content-type", "")
    title = ""
    if content_type.split(";", 1)[0].strip().lower() in _HTML_TYPES:
        title = extract_title(decode_body(body, response.charset_encoding))
    return jobs_pb2.ScrapeResult(
        final_url=str(response.url),
        status_code=response.status_code,
        title=title,
        content_type=content_type,
        body_bytes=len(body),
    )


def decode_body(body: bytes, charset: str | None) -> str:
    """Text of ``body`` in its declared charset, else UTF-8; undecodable bytes are replaced."""
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        return body.decode("utf-8", errors="replace")


def extract_title(text: str) -> str:
    """The first ``<title>``, unescaped, whitespace collapsed; good enough until real extraction."""
    match = _TITLE_RE.search(text, 0, TITLE_SCAN_CHARS)
    if match is None:
        return ""
    return " ".join(html.unescape(match.group(1)).split())[:MAX_TITLE_CHARS]


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP date.

    Returns None when absent or unparseable; past dates give 0; values are capped at a day.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" dates parse naive; HTTP dates are always UTC
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER)
