"""Browser contexts reused across renders, one render at a time, with nothing of a job left for the next.

Opening a context and its first page costs Chromium a few hundred milliseconds (a renderer process
to start, the routes and init script to install), a large part of a small page's render. A context
may serve up to ``reuse`` renders one after another; between two, everything a page can leave is
removed: its pages are closed (sessionStorage and ``window.name`` go with them), cookies and
permissions are cleared, and so is the storage (localStorage, IndexedDB, Cache Storage, ...) of
every origin the render sent a request to, which are the only origins that could have stored
anything: documents reach Chromium through the route only. The HTTP cache is not used at all
while requests are routed. What stays in a reused context is Chromium's own memory: the history
that colours visited links, and compiled-script and font caches. ``reuse=1`` opens a new context
for every render, so not even that is shared.

Each context also keeps one blank page open for its whole life (the anchor): while a context has
a page open, Chromium does not tear down and rebuild what it keeps per open context, and a render's
page costs its renderer about 400 ms less CPU after ``load`` (docs/scrape-pipeline.md has the
figures). The anchor never navigates and no render's script holds a reference to it.

A render that crashed, or whose cleanup failed or took too long, closes its context instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from playwright.async_api import Browser, BrowserContext, Page, Route
from playwright.async_api import Error as PlaywrightError

from crawlfleet.worker.pipeline.browser_routing import RenderState, abort_quietly, close_web_socket, handle_route

CLEANUP_TIMEOUT = 5.0
BLANK = "about:blank"
# What a page can store for an origin. Not "all": that also drops Chromium's shader cache and
# interest groups, which no page of ours writes, and takes a second more per render.
STORAGE_TYPES = "cookies,file_systems,indexeddb,local_storage,websql,service_workers,cache_storage,shared_storage"
# WebRTC sends UDP (STUN/TURN) that no route sees and the resolver rule does not stop for IP
# literals; removing the constructors in every frame, before page scripts run, keeps it off.
NO_WEBRTC_SCRIPT = """
for (const name of ["RTCPeerConnection", "webkitRTCPeerConnection", "RTCDataChannel",
                    "RTCSessionDescription", "RTCIceCandidate", "RTCRtpSender", "RTCRtpReceiver"]) {
  try { delete globalThis[name]; } catch (e) {}
}
"""


@dataclass(eq=False)
class PooledContext:
    """A context and the render it serves now (``state``; None between renders: requests are aborted)."""

    context: BrowserContext
    # A blank page open as long as the context, so that a render's page is never the context's only one.
    anchor: Page | None = None
    renders: int = 0
    state: RenderState | None = None
    origins: set[str] = field(default_factory=set)

    async def route(self, route: Route) -> None:
        state = self.state
        if state is None:  # a late request of a page already closed
            await abort_quietly(route, "aborted")
            return
        self.origins.add(origin_of(route.request.url))
        await handle_route(state, route)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def open_context(browser: Browser, *, user_agent: str | None, anchored: bool = True) -> PooledContext:
    """A context whose every request goes through the pooled context's current render; ``anchored``:
    with its blank page open (for a context that serves more than one render)."""
    context = await browser.new_context(user_agent=user_agent, java_script_enabled=True, service_workers="block")
    pooled = PooledContext(context)
    await context.add_init_script(NO_WEBRTC_SCRIPT)
    await context.route("**/*", pooled.route)
    # Nothing may connect on its own: WebSockets are answered with a close.
    await context.route_web_socket("**/*", close_web_socket)
    if anchored:
        pooled.anchor = await context.new_page()
    return pooled


class AnchorLost(Exception):
    """The context's anchor page is gone or not blank any more: the context is closed, not reused."""


async def clear_for_next_render(pooled: PooledContext, page: Page) -> None:
    """Remove what the render left: storage of the origins it reached, cookies, permissions, pages."""
    origins, pooled.origins = pooled.origins, set()
    session = await pooled.context.new_cdp_session(page)
    try:
        for origin in sorted(origins):
            await session.send("Storage.clearDataForOrigin", {"origin": origin, "storageTypes": STORAGE_TYPES})
    finally:
        with contextlib.suppress(PlaywrightError):
            await session.detach()
    await pooled.context.clear_cookies()
    await pooled.context.clear_permissions()
    for opened in list(pooled.context.pages):  # the render's page and any popup it opened
        if opened is not pooled.anchor:
            await opened.close()
    anchor = pooled.anchor
    if anchor is not None and (anchor.is_closed() or anchor.url != BLANK):
        raise AnchorLost("the context's blank page closed or navigated")


class ContextPool:
    """Idle contexts of one browser, each taken by one render at a time."""

    def __init__(self, browser: Browser, *, reuse: int, user_agent: str | None, blank_page: bool = True) -> None:
        self._browser = browser
        self._reuse = reuse
        self._blank_page = blank_page
        self._user_agent = user_agent
        self._idle: list[PooledContext] = []
        self.opened = 0  # contexts opened so far (tests and figures)

    async def take(self) -> PooledContext:
        if self._idle:
            return self._idle.pop()
        # A context that serves one render is closed with its page: an anchor would only cost a page.
        anchored = self._blank_page and self._reuse > 1
        pooled = await open_context(self._browser, user_agent=self._user_agent, anchored=anchored)
        self.opened += 1
        return pooled

    async def give_back(self, pooled: PooledContext, page: Page | None, *, reusable: bool) -> bool:
        """Clear the context for the next render and keep it, or close it; False if Chromium did
        not answer in time (the caller then retires the browser)."""
        pooled.state = None
        pooled.renders += 1
        keep = reusable and page is not None and pooled.renders < self._reuse
        try:
            async with asyncio.timeout(CLEANUP_TIMEOUT):
                if keep and page is not None:
                    try:
                        await clear_for_next_render(pooled, page)
                    except (PlaywrightError, AnchorLost):
                        keep = False
                if not keep:
                    await close_quietly(page, pooled.context)
        except TimeoutError:
            return False
        if keep:
            self._idle.append(pooled)
        return True

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(close_quietly(None, pooled.context) for pooled in idle), return_exceptions=True)


async def close_quietly(page: Page | None, context: BrowserContext | None) -> None:
    """Close the page, then the context, ignoring a browser already gone."""
    steps: list[Callable[[], Awaitable[None]]] = []
    if page is not None:
        steps.append(page.close)
    if context is not None:
        steps.append(context.close)
    for step in steps:
        with contextlib.suppress(PlaywrightError):
            await step()
