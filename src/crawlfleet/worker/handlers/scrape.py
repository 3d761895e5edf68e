"""The `scrape` kind: obey robots.txt, fetch (HTTP, browser, or HTTP then browser), extract,
process images.

Failure classes (`JobError.error_type`): dns_error, connection_refused, connect_error, timeout,
transport_error (retryable); tls_error, blocked_destination, invalid_url, too_many_redirects (not);
http_5xx and http_429 (retryable, Retry-After honoured); http_4xx (not); non_html, body_too_large
(not); browser_crash, browser_unavailable, navigation_failed (retryable); robots_disallowed (not: the
job ends skipped); robots_unreachable (released, uncharged: worker/robots.py). A page fails with the same
class whether it is fetched or rendered: the browser's document goes through the same fetcher and
the same `check_page`, before Chromium sees it. A bad image never fails the job: it is recorded on
the image with its reason.

A job with validators (`if_none_match`, `if_modified_since`) makes a conditional request; a 304
answer completes it as `not_modified`, with nothing extracted and no image fetched.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
from dataclasses import dataclass

from crawlfleet.common import limits
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.context import JobContext
from crawlfleet.worker.errors import JobError
from crawlfleet.worker.pipeline.autodetect import needs_browser
from crawlfleet.worker.pipeline.browser import (
    BrowserCrashed,
    BrowserUnavailable,
    NavigationFailed,
    RenderTimeout,
    RequestBlocked,
    RoutedResponse,
    TooManyRedirects,
)
from crawlfleet.worker.pipeline.extract import PageData, extract_page
from crawlfleet.worker.pipeline.fetch import FetchError
from crawlfleet.worker.pipeline.fields import FieldRule
from crawlfleet.worker.pipeline.images_stage import process_page_images

MAX_RETRY_AFTER = 24 * 3600.0  # a server asking for more is not taken at its word
HTML_TYPES = ("text/html", "application/xhtml+xml")
NOTABLE_HEADERS = (
    "cache-control",
    "content-language",
    "etag",
    "expires",
    "last-modified",
    "link",
    "server",
    "x-robots-tag",
)
# Headers that describe the wire encoding httpx already undid; passing them on would corrupt the body.
_HOP_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding", "connection", "keep-alive"})


@dataclass(frozen=True, kw_only=True)
class PageSource:
    """A fetched or rendered page, before extraction."""

    final_url: str
    status: int
    headers: dict[str, str]
    html: str
    redirects: tuple[tuple[str, int], ...]
    rendered_with: jobs_pb2.RenderMode.ValueType
    body_bytes: int
    charset: str
    content_type: str
    # Server latency of the page's request (fetches only; None for renders).
    latency: float | None = None
    # SHA-256 (hex) of the decoded body; for a render, of the document's response as the browser got it.
    content_sha256: str = ""
    # The server answered 304 to the job's validators: there is no page to extract.
    not_modified: bool = False
    # The decoded body as fetched (fetches only), for the browser to be served it in `auto` mode.
    body: bytes = b""


class NotModified(Exception):
    """The document answered 304 to a conditional request (raised out of a render)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(f"{url} is not modified")
        self.url = url
        self.headers = headers


async def run_scrape(job: pb.LeasedJob, ctx: JobContext) -> jobs_pb2.JobResult:
    """Scrape `spec.scrape.url` and return the page's data and processed images."""
    spec = job.spec.scrape
    settings = ctx.settings.scrape
    timeout = spec.timeout.ToNanoseconds() / 1e9 if spec.HasField("timeout") else settings.http_timeout
    mode = spec.render or jobs_pb2.RENDER_MODE_HTTP
    if ctx.robots is not None:  # on the job's URL, whether it is fetched or rendered
        with ctx.resources.stages.time("robots"):
            await ctx.robots.check(job, spec.url, ctx, timeout=timeout)
    # `timeout` bounds the fetch (in the fetcher) and the render (in the browser pool, from the
    # moment the job has a browser page: waiting for a free page is not the site's fault).
    validators = conditional_headers(spec)
    if mode == jobs_pb2.RENDER_MODE_BROWSER:
        source = await render(ctx, spec.url, timeout, validators)
        if source.not_modified:
            return jobs_pb2.JobResult(scrape=not_modified_result(source))
        page = await extract(ctx, source, spec)
    else:
        source = await fetch_page(ctx, spec.url, timeout, validators)
        if source.not_modified:
            return jobs_pb2.JobResult(scrape=not_modified_result(source))
        page = await extract(ctx, source, spec)
        reason = None
        if mode == jobs_pb2.RENDER_MODE_AUTO:
            reason = await ctx.run_blocking_if_large(
                len(source.html), INLINE_HTML_CHARS, needs_browser, source.html, page
            )
        if reason is not None:
            ctx.log.info("auto: rendering in the browser (%s)", reason)
            source = await render(ctx, source.final_url, timeout, document=document_for_browser(source))
            page = await extract(ctx, source, spec)
    images: list[jobs_pb2.ImageResult] = []
    if not spec.skip_images:
        limit = spec.max_images or settings.max_images
        images = await process_page_images(ctx, list(page.image_urls[:limit]))
    return jobs_pb2.JobResult(scrape=scrape_result(source, page, images))


def conditional_headers(spec: jobs_pb2.ScrapeSpec) -> dict[str, str]:
    """The request headers of the job's validators (none: an unconditional request)."""
    headers = {}
    if spec.if_none_match:
        headers["If-None-Match"] = spec.if_none_match
    if spec.if_modified_since:
        headers["If-Modified-Since"] = spec.if_modified_since
    return headers


async def extract(ctx: JobContext, source: PageSource, spec: jobs_pb2.ScrapeSpec) -> PageData:
    """Extract the page's data, and the job's declared fields, off the event loop."""
    rules = [FieldRule.from_spec(field) for field in spec.fields]
    with ctx.resources.stages.time("extract"):
        return await ctx.run_blocking_if_large(
            len(source.html),
            INLINE_HTML_CHARS,
            extract_page,
            source.html,
            source.final_url,
            fields=rules,
            follow_selectors=list(spec.follow_selectors),
        )


# Pages up to these sizes are hashed and extracted on the event loop: a thread hop costs more CPU
# than hashing or parsing a typical page, and hashing 1 MiB (about 2 ms) or parsing 64 Ki
# characters is over too soon to delay a heartbeat.
INLINE_HASH_BYTES = 1024 * 1024
INLINE_HTML_CHARS = 64 * 1024


def sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


async def content_hash(ctx: JobContext, body: bytes) -> str:
    """The body's SHA-256, in a thread only for a body past INLINE_HASH_BYTES."""
    return await ctx.run_blocking_if_large(len(body), INLINE_HASH_BYTES, sha256_hex, body)


async def fetch_page(ctx: JobContext, url: str, timeout: float, validators: dict[str, str] | None = None) -> PageSource:
    settings = ctx.settings.scrape
    with ctx.resources.stages.time("fetch"):
        fetched = await ctx.resources.fetcher.get(
            url, max_bytes=settings.max_body_bytes, timeout=timeout, headers=validators or None
        )
    headers = {k.lower(): v for k, v in fetched.headers.items()}
    if fetched.status == 304 and validators:
        return PageSource(
            final_url=fetched.url,
            status=fetched.status,
            headers=headers,
            html="",
            redirects=fetched.redirects,
            rendered_with=jobs_pb2.RENDER_MODE_HTTP,
            body_bytes=0,
            charset="",
            content_type="",
            latency=fetched.latency,
            not_modified=True,
        )
    check_page(fetched.url, fetched.status, headers, fetched.body)
    return PageSource(
        final_url=fetched.url,
        status=fetched.status,
        headers=headers,
        html=fetched.text(),
        redirects=fetched.redirects,
        rendered_with=jobs_pb2.RENDER_MODE_HTTP,
        body_bytes=len(fetched.body),
        charset=fetched.charset,
        content_type=fetched.content_type,
        latency=fetched.latency,
        content_sha256=await content_hash(ctx, fetched.body),
        body=fetched.body,
    )


def document_for_browser(fetched: PageSource) -> RoutedResponse | None:
    """The fetched page as the browser's document, unless the server said another request may get
    another answer: a `Vary` on anything but Accept-Encoding (the browser's Accept, Accept-Language
    and client hints differ from the fetcher's; the encodings are the fetcher's in both cases)."""
    varies = {name.strip().lower() for name in fetched.headers.get("vary", "").split(",") if name.strip()}
    if varies - {"accept-encoding"}:
        return None
    headers = {name: value for name, value in fetched.headers.items() if name not in _HOP_HEADERS}
    return RoutedResponse(status=fetched.status, headers=headers, body=fetched.body)


async def render(
    ctx: JobContext,
    url: str,
    timeout: float,
    validators: dict[str, str] | None = None,
    document: RoutedResponse | None = None,
) -> PageSource:
    """Render url in the browser; every request it makes goes through the guarded fetcher, but for
    the document when the caller already fetched it (`document`, a GET of url answered moments ago)."""
    settings = ctx.settings.scrape
    fetcher = ctx.resources.fetcher
    document_body: list[bytes] = []  # the body of the document's final response, once it has come

    async def fetch_for_browser(
        method: str, target: str, headers: dict[str, str], body: bytes | None
    ) -> RoutedResponse:
        # The client negotiates the encodings it can decode; the browser's list (br, zstd) may not be.
        headers = {k: v for k, v in headers.items() if k.lower() != "accept-encoding"}
        if validators and not document_body and method == "GET":
            # Nothing but the document (and its redirect hops) is requested before it has answered.
            headers.update(validators)
        try:
            got = await fetcher.request_once(
                method, target, headers=headers, body=body, max_bytes=settings.max_body_bytes, timeout=timeout
            )
        except FetchError as exc:
            if exc.error_type == "blocked_destination":
                raise RequestBlocked(target) from exc
            raise
        headers_out = {k: v for k, v in got.headers.items() if k.lower() not in _HOP_HEADERS}
        return RoutedResponse(status=got.status, headers=headers_out, body=got.body)

    def check_document(final_url: str, response: RoutedResponse) -> None:
        headers = {k.lower(): v for k, v in response.headers.items()}
        if response.status == 304 and validators:
            raise NotModified(final_url, headers)
        check_page(final_url, response.status, headers, response.body)
        document_body.append(response.body)

    try:
        # The pool times the render and its wait for a page slot ("render", "render_wait").
        rendered = await ctx.resources.browser.render(
            url, timeout=timeout, fetch=fetch_for_browser, check_document=check_document, document=document
        )
    except NotModified as unchanged:
        return PageSource(
            final_url=unchanged.url,
            status=304,
            headers=unchanged.headers,
            html="",
            redirects=(),
            rendered_with=jobs_pb2.RENDER_MODE_BROWSER,
            body_bytes=0,
            charset="",
            content_type="",
            not_modified=True,
        )
    except RequestBlocked as exc:
        raise JobError(
            f"destination refused by the egress guard: {exc}", error_type="blocked_destination", retryable=False
        ) from exc
    except RenderTimeout as exc:
        raise JobError(f"rendering {url} took too long: {exc}", error_type="timeout", retryable=True) from exc
    except BrowserCrashed as exc:
        raise JobError(
            f"the browser crashed rendering {url}: {exc}", error_type="browser_crash", retryable=True
        ) from exc
    except BrowserUnavailable as exc:
        raise JobError(str(exc), error_type="browser_unavailable", retryable=True) from exc
    except TooManyRedirects as exc:
        raise JobError(str(exc), error_type="too_many_redirects", retryable=False) from exc
    except NavigationFailed as exc:
        # Chromium gave up for a reason the fetcher and check_document did not see coming.
        raise JobError(
            f"the browser could not load {url}: {exc}", error_type="navigation_failed", retryable=True
        ) from exc
    headers = {k.lower(): v for k, v in rendered.headers.items()}
    return PageSource(
        final_url=rendered.final_url,
        status=rendered.status,
        headers=headers,
        html=rendered.html,
        redirects=rendered.redirects,
        rendered_with=jobs_pb2.RENDER_MODE_BROWSER,
        body_bytes=len(rendered.html.encode()),
        charset="utf-8",
        content_type=media_type(headers) or "text/html",
        content_sha256=await content_hash(ctx, document_body[-1]) if document_body else "",
    )


def check_page(url: str, status: int, headers: dict[str, str], body: bytes) -> None:
    """Refuse a response that is no page to scrape: an error status, then a body that is not HTML.

    The one check of both paths: over HTTP on the fetched page, in the browser on the document's
    response before Chromium sees it. `headers` have lower-case names.
    """
    check_status(status, headers, url)
    check_html(media_type(headers), body[:512], url)


def media_type(headers: dict[str, str]) -> str:
    """The Content-Type's media type, lower-case, without parameters."""
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def check_status(status: int, headers: dict[str, str], url: str) -> None:
    """5xx and 429 are retried (429 after Retry-After); other 4xx are final."""
    if status < 400:
        return
    message = f"HTTP {status} from {url}"
    retry_after = parse_retry_after(headers.get("retry-after"))
    if status == 429:
        raise JobError(message, error_type="http_429", retryable=True, retry_after=retry_after)
    if status >= 500:
        raise JobError(message, error_type="http_5xx", retryable=True, retry_after=retry_after)
    raise JobError(message, error_type="http_4xx", retryable=False)


def check_html(content_type: str, head: bytes, url: str) -> None:
    """Only HTML pages are scraped; a missing Content-Type is sniffed from the first bytes."""
    if content_type in HTML_TYPES:
        return
    if not content_type and head.lstrip()[:1] == b"<":
        return
    raise JobError(f"{url} is {content_type or 'not HTML'}, not an HTML page", error_type="non_html", retryable=False)


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delay-seconds or an HTTP date), capped at a day."""
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


def scrape_result(source: PageSource, page: PageData, images: list[jobs_pb2.ImageResult]) -> jobs_pb2.ScrapeResult:
    """The result to report, trimmed to the API's bounds (no NUL, no oversized text) so the
    coordinator stores it rather than refusing the job."""
    result = jobs_pb2.ScrapeResult(
        final_url=source.final_url,
        status_code=source.status,
        title=page.title,
        content_type=source.content_type,
        body_bytes=source.body_bytes,
        redirects=[jobs_pb2.Redirect(url=u, status_code=s) for u, s in source.redirects],
        meta_description=page.meta_description,
        canonical_url=page.canonical_url,
        language=page.language or source.headers.get("content-language", "").split(",")[0].strip(),
        main_text=page.main_text,
        links=[
            jobs_pb2.Link(url=link.url, text=link.text, same_host=link.same_host, followed=link.followed)
            for link in page.links
        ],
        image_urls=list(page.image_urls),
        json_ld=list(page.json_ld),
        open_graph=page.open_graph,
        rendered_with=source.rendered_with,
        charset=source.charset,
        headers=notable_headers(source),
        images=images,
        fields=[jobs_pb2.FieldValue(name=field.name, values=field.values) for field in page.fields],
        content_sha256=source.content_sha256,
    )
    if source.latency is not None:
        result.response_time.FromNanoseconds(round(source.latency * 1e9))
    limits.fit(result)
    return result


def not_modified_result(source: PageSource) -> jobs_pb2.ScrapeResult:
    """The result of a 304: the page is as the job's validators knew it, and nothing was extracted."""
    result = jobs_pb2.ScrapeResult(
        final_url=source.final_url,
        status_code=source.status,
        redirects=[jobs_pb2.Redirect(url=u, status_code=s) for u, s in source.redirects],
        rendered_with=source.rendered_with,
        headers=notable_headers(source),
        not_modified=True,
    )
    if source.latency is not None:
        result.response_time.FromNanoseconds(round(source.latency * 1e9))
    limits.fit(result)
    return result


def notable_headers(source: PageSource) -> dict[str, str]:
    return {name: source.headers[name] for name in NOTABLE_HEADERS if name in source.headers}
