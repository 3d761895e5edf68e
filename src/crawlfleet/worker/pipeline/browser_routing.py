"""How a rendered page's requests are answered: each one performed by the caller's ``BrowserFetch``
(the egress-guarded client) and fulfilled from its response, or aborted.

Playwright does not route the hops of a redirect that a route handler answers with a 3xx (Chromium
would follow them on the network), so redirects are followed here: the main document's by recording
the ``Location`` for the pool to navigate to, sub-resources' by calling ``fetch`` for each hop and
answering the original request with the last response.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Frame, Request, Route, WebSocketRoute

from crawlfleet.worker.pipeline.browser_errors import RequestBlocked, TooManyRedirects
from crawlfleet.worker.pipeline.settings import MAX_REDIRECTS

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# The fetcher returns the decoded body, so these would describe bytes Chromium does not receive.
_UNFORWARDED_HEADERS = frozenset(
    {"content-encoding", "content-length", "transfer-encoding", "connection", "keep-alive"}
)
# A document sent as an attachment would be downloaded, not rendered; over HTTP it is scraped like any page.
_UNFORWARDED_DOCUMENT_HEADERS = _UNFORWARDED_HEADERS | {"content-disposition"}
_CROSS_ORIGIN_DROPPED = frozenset({"authorization", "cookie"})
ALLOWED_SCHEMES = ("http", "https")


@dataclass(frozen=True, kw_only=True)
class RoutedResponse:
    """One response for the browser. ``body`` is decoded (no content-encoding left to undo)."""

    status: int
    headers: dict[str, str]
    body: bytes


# (method, url, headers, body): one HTTP request through the egress-guarded client, redirects not
# followed. Raises ``RequestBlocked`` for refused destinations, anything else for network failures.
BrowserFetch = Callable[[str, str, dict[str, str], bytes | None], Awaitable[RoutedResponse]]
# (url, response): called with the document's final response (after its redirects) before Chromium
# sees it; whatever it raises ends the render and is raised by ``render``. The caller's chance to refuse
# what it would refuse over HTTP (an error status, a body that is not a page) the same way.
DocumentCheck = Callable[[str, RoutedResponse], None]


@dataclass(eq=False)
class RenderState:
    """What the route handler of one render records, and the fetches it has running."""

    fetch: BrowserFetch
    check_document: DocumentCheck | None = None
    block_resources: frozenset[str] = frozenset()
    main_frame: Frame | None = None
    blocked_urls: list[str] = field(default_factory=list)
    redirects: list[tuple[str, int]] = field(default_factory=list)
    following_document: bool = True
    next_location: str | None = None
    document_error: BaseException | None = None
    document_headers: dict[str, str] = field(default_factory=dict)
    fetches: set[asyncio.Future[RoutedResponse]] = field(default_factory=set)
    # The document's response the caller already has (url, response): answers the first GET of
    # exactly that URL as the page's document, once, instead of fetching it again.
    prefetched: tuple[str, RoutedResponse] | None = None

    def take_prefetched(self, method: str, url: str) -> RoutedResponse | None:
        if self.prefetched is None or method != "GET" or url != self.prefetched[0]:
            return None
        response, self.prefetched = self.prefetched[1], None
        return response


class RenderOver(Exception):
    """The render ended while a request was being fetched: leave the route alone."""


async def handle_route(state: RenderState, route: Route) -> None:
    """Answers one request of the page: aborted, refused, or fetched through the egress guard."""
    request = route.request
    if request.resource_type in state.block_resources:
        await abort_quietly(route, "blockedbyclient")
        return
    document = is_main_document(request, state.main_frame)
    try:
        headers = await request.all_headers()
    except PlaywrightError:  # the page closed meanwhile
        return
    try:
        prefetched = state.take_prefetched(request.method, request.url) if document else None
        if prefetched is not None:
            response = prefetched
        elif document:
            response = await fetch_once(state, request.method, request.url, headers, request.post_data_buffer)
        else:
            response = await fetch_following(state, request.method, request.url, headers, request.post_data_buffer)
    except RenderOver:
        return
    except RequestBlocked as exc:
        if document:
            state.document_error = exc
        await abort_quietly(route, "blockedbyclient")
        return
    except Exception as exc:
        if document:
            state.document_error = exc
        await abort_quietly(route, "failed")
        return
    if document:
        location = _header(response.headers, "location")
        if response.status in REDIRECT_STATUSES and location:
            # Chromium would follow a fulfilled redirect without routing it: navigate there instead.
            if state.following_document:
                state.redirects.append((request.url, response.status))
                state.next_location = urljoin(request.url, location)
                if urlsplit(state.next_location).scheme not in ALLOWED_SCHEMES:
                    state.blocked_urls.append(state.next_location)
                    state.document_error = RequestBlocked(state.next_location, "redirect to a non-HTTP scheme")
            await abort_quietly(route, "aborted")
            return
        state.document_headers = {name.lower(): value for name, value in response.headers.items()}
        if state.following_document and state.check_document is not None:
            try:
                state.check_document(request.url, response)
            except Exception as exc:
                state.document_error = exc
                await abort_quietly(route, "aborted")
                return
    unforwarded = _UNFORWARDED_DOCUMENT_HEADERS if document else _UNFORWARDED_HEADERS
    headers_out = {name: value for name, value in response.headers.items() if name.lower() not in unforwarded}
    with contextlib.suppress(PlaywrightError):
        await route.fulfill(status=response.status, headers=headers_out, body=response.body)


async def fetch_once(
    state: RenderState, method: str, url: str, headers: dict[str, str], body: bytes | None
) -> RoutedResponse:
    """One request through the caller's fetch, cancelled if the render ends first."""
    task = asyncio.ensure_future(state.fetch(method, url, headers, body))
    state.fetches.add(task)
    task.add_done_callback(state.fetches.discard)
    await asyncio.wait({task})
    if task.cancelled():
        raise RenderOver
    try:
        return task.result()
    except RequestBlocked:
        state.blocked_urls.append(url)
        raise


async def fetch_following(
    state: RenderState, method: str, url: str, headers: dict[str, str], body: bytes | None
) -> RoutedResponse:
    """A sub-resource request with its redirects followed here, each hop through the egress guard."""
    first_url = url
    for _hop in range(MAX_REDIRECTS + 1):
        response = await fetch_once(state, method, url, headers, body)
        location = _header(response.headers, "location")
        if response.status not in REDIRECT_STATUSES or not location:
            return response
        target = urljoin(url, location)
        if urlsplit(target).scheme not in ALLOWED_SCHEMES:
            state.blocked_urls.append(target)
            raise RequestBlocked(target, "redirect to a non-HTTP scheme")
        if (response.status == 303 and method != "HEAD") or (response.status in (301, 302) and method == "POST"):
            method, body = "GET", None
            headers = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}
        if _origin(target) != _origin(url):
            headers = {k: v for k, v in headers.items() if k.lower() not in _CROSS_ORIGIN_DROPPED}
        url = target
    raise TooManyRedirects(f"more than {MAX_REDIRECTS} redirects from {first_url}")


def is_main_document(request: Request, main_frame: Frame | None) -> bool:
    """Whether this is a navigation of the rendered page itself (not of a frame in it, nor of a popup)."""
    try:
        return request.is_navigation_request() and request.frame == main_frame
    except PlaywrightError:  # a request without a frame (a worker's)
        return False


async def close_web_socket(web_socket: WebSocketRoute) -> None:
    await web_socket.close(code=1008, reason="WebSockets are not allowed")


async def abort_quietly(route: Route, error_code: str) -> None:
    with contextlib.suppress(PlaywrightError):  # the page closed meanwhile
        await route.abort(error_code)


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name), None)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc
