"""Rendering pages in one shared headless Chromium, with every request it makes sent through the egress guard.

The browser never touches the network itself. Each request a page makes is intercepted
(``context.route``) and performed by the caller's ``BrowserFetch`` (the egress-guarded HTTP client), and
Chromium is launched with a host resolver that resolves nothing, so a request Playwright does not route
(a redirect hop, a WebSocket, anything missed) fails instead of leaving the machine.

How each request is answered is ``browser_routing``; the main document's redirects are followed here,
by navigating to each ``Location`` in turn.

Browser hygiene: a context serves one render at a time, up to ``context_reuse`` renders with
everything a job can leave cleared between them (``browser_contexts``); pages closed in
``finally``, the browser recycled after ``pages_per_browser`` renders and relaunched after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from playwright._impl._errors import TargetClosedError  # not re-exported by playwright.async_api
from playwright.async_api import Browser, Page, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from crawlfleet.worker.pipeline.browser_contexts import ContextPool, PooledContext
from crawlfleet.worker.pipeline.browser_errors import (
    BrowserCrashed,
    BrowserError,
    BrowserUnavailable,
    NavigationFailed,
    RenderTimeout,
    RequestBlocked,
    TooManyRedirects,
)
from crawlfleet.worker.pipeline.browser_routing import (
    ALLOWED_SCHEMES,
    BrowserFetch,
    DocumentCheck,
    RenderState,
    RoutedResponse,
)
from crawlfleet.worker.pipeline.chromium import INSTALL_HINT, find_chromium
from crawlfleet.worker.pipeline.settings import MAX_REDIRECTS

# What callers of the pool use, importable from here wherever it is defined.
__all__ = [
    "BrowserCrashed",
    "BrowserError",
    "BrowserFetch",
    "BrowserOptions",
    "BrowserPool",
    "BrowserUnavailable",
    "DocumentCheck",
    "NavigationFailed",
    "RenderTimeout",
    "RenderedPage",
    "RequestBlocked",
    "RoutedResponse",
    "TooManyRedirects",
]

DEFAULT_PAGES_PER_BROWSER = 100
DEFAULT_SETTLE_TIMEOUT = 2.0
# The image stage downloads a page's images itself, from the URLs in the rendered DOM.
DEFAULT_BLOCK_RESOURCES = frozenset({"font", "media", "image"})
DEFAULT_MAX_CONCURRENT_PAGES = 4
DEFAULT_CONTEXT_REUSE = 20

# Headless, no sandbox (the worker runs as root in containers), and none of Chromium's own traffic
# (updates, sync, QUIC probes). The resolver rule makes every connection the browser would open
# itself fail: the routed requests are answered without it, so only unrouted ones are affected.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)
CONTENT_TIMEOUT = 5.0  # for page.content() and closing, which a busy page can stall


class RenderTimings(Protocol):
    """Where the pool reports each render's wait for a page slot and the render itself."""

    def observe(self, stage: Literal["render_wait", "render"], seconds: float) -> None: ...


class _Untimed:
    def observe(self, stage: Literal["render_wait", "render"], seconds: float) -> None:
        pass


@dataclass(frozen=True, kw_only=True)
class BrowserOptions:
    executable: str | None = None
    pages_per_browser: int = DEFAULT_PAGES_PER_BROWSER
    settle_timeout: float = DEFAULT_SETTLE_TIMEOUT
    block_resources: frozenset[str] = DEFAULT_BLOCK_RESOURCES
    user_agent: str | None = None
    max_concurrent_pages: int = DEFAULT_MAX_CONCURRENT_PAGES
    # Renders one context serves in turn (1: a new context for each).
    context_reuse: int = DEFAULT_CONTEXT_REUSE
    # A blank page kept open in each reused context: less CPU per render, more memory (browser_contexts).
    blank_page: bool = True


@dataclass(frozen=True, kw_only=True)
class RenderedPage:
    final_url: str
    status: int
    headers: dict[str, str]
    html: str
    redirects: tuple[tuple[str, int], ...]
    blocked_urls: tuple[str, ...]


@dataclass(eq=False)
class _Generation:
    """One launched browser process, its contexts and the renders it has served."""

    browser: Browser
    contexts: ContextPool
    renders: int = 0
    in_flight: int = 0
    retired: bool = False


class BrowserPool:
    """One Chromium shared by the worker's renders, a fresh context for each."""

    def __init__(self, options: BrowserOptions, *, timings: RenderTimings | None = None) -> None:
        self._options = options
        self._timings = timings if timings is not None else _Untimed()
        self._slots = asyncio.Semaphore(options.max_concurrent_pages)
        self._launch_lock = asyncio.Lock()
        self._playwright: Playwright | None = None
        self._current: _Generation | None = None
        self._generations: set[_Generation] = set()
        # Contexts being cleared for their next render: off the render's page slot and its job.
        self._cleanups: set[asyncio.Task[None]] = set()
        self._launches = 0
        self._closed = False
        self.restarts = 0

    @property
    def contexts_opened(self) -> int:
        """Contexts the current browser has opened (tests and figures)."""
        current = self._current
        return current.contexts.opened if current is not None else 0

    @property
    def connected(self) -> bool:
        """Whether a browser is launched and answering (for health checks and tests)."""
        current = self._current
        return current is not None and current.browser.is_connected()

    async def start(self) -> None:
        """Launch the browser now rather than on the first render. Raises ``BrowserUnavailable``."""
        async with self._launch_lock:
            if self._current is None:
                self._current = await self._launch()

    async def render(
        self,
        url: str,
        *,
        timeout: float,
        fetch: BrowserFetch,
        check_document: DocumentCheck | None = None,
        document: RoutedResponse | None = None,
    ) -> RenderedPage:
        """Load ``url`` in a new context, let it settle, and return its DOM.

        Redirects of the document are followed up to ``MAX_REDIRECTS``; its final response passes
        ``check_document`` (when given) before Chromium sees it. ``document``, when given, is the
        response to a GET of ``url`` the caller already has: it answers the page's first request for
        ``url`` instead of ``fetch`` (later ones, a reload, are fetched). Raises ``RenderTimeout``,
        ``BrowserCrashed`` (retryable), ``RequestBlocked`` when the document is refused,
        ``TooManyRedirects``, ``NavigationFailed``, or what ``fetch`` or ``check_document`` raised for
        the document.
        """
        _require_http(url)
        state = RenderState(fetch, check_document=check_document, block_resources=self._options.block_resources)
        if document is not None:
            state.prefetched = (url, document)
        waiting = time.perf_counter()
        async with self._slots:
            # Timed apart: with more renders than page slots, the wait is queueing, not rendering.
            started = time.perf_counter()
            self._timings.observe("render_wait", started - waiting)
            try:
                return await self._render_taken(url, timeout, state)
            finally:
                self._timings.observe("render", time.perf_counter() - started)

    async def _render_taken(self, url: str, timeout: float, state: RenderState) -> RenderedPage:
        """Render on the current browser (launched if needed) in the page slot the caller holds."""
        generation = await self._take()
        try:
            return await self._render_on(generation, url, timeout, state)
        except BrowserCrashed:
            self._retire(generation)
            raise
        finally:
            generation.in_flight -= 1
            if generation.retired and generation.in_flight == 0:
                await self._close_generation(generation)

    async def cleared(self) -> None:
        """Until the contexts of finished renders are cleared (or closed), e.g. to count them in tests."""
        await asyncio.gather(*self._cleanups, return_exceptions=True)

    async def aclose(self) -> None:
        """Close the browser and stop Playwright; safe to call twice."""
        self._closed = True
        await self.cleared()
        async with self._launch_lock:
            self._current = None
            for generation in list(self._generations):
                await self._close_generation(generation)
            if self._playwright is not None:
                playwright_, self._playwright = self._playwright, None
                await playwright_.stop()

    async def _take(self) -> _Generation:
        """The browser this render runs on, launched if needed; retired once it has served its quota."""
        async with self._launch_lock:
            if self._closed:
                raise BrowserUnavailable("the browser pool is closed")
            if self._current is None:
                self._current = await self._launch()
            generation = self._current
            generation.renders += 1
            generation.in_flight += 1
            if generation.renders >= self._options.pages_per_browser:
                self._retire(generation)
            return generation

    async def _launch(self) -> _Generation:
        if self._playwright is None:
            self._playwright = await async_playwright().start()
        executable = find_chromium(self._options.executable)
        if executable is None:
            where = f" at {self._options.executable!r}" if self._options.executable else ""
            raise BrowserUnavailable(f"no Chromium found{where}: {INSTALL_HINT}")
        try:
            browser = await self._playwright.chromium.launch(
                executable_path=executable, headless=True, args=list(CHROMIUM_ARGS)
            )
        except PlaywrightError as exc:
            raise BrowserUnavailable(f"cannot launch Chromium at {executable}: {exc.message}; {INSTALL_HINT}") from exc
        options = self._options
        contexts = ContextPool(
            browser, reuse=options.context_reuse, user_agent=options.user_agent, blank_page=options.blank_page
        )
        generation = _Generation(browser, contexts)
        browser.on("disconnected", lambda _browser: self._retire(generation))
        self._generations.add(generation)
        if self._launches:
            self.restarts += 1
        self._launches += 1
        return generation

    def _retire(self, generation: _Generation) -> None:
        """Take no more renders on this browser; it closes when its last page ends."""
        generation.retired = True
        if self._current is generation:
            self._current = None

    async def _close_generation(self, generation: _Generation) -> None:
        self._retire(generation)
        if generation not in self._generations:
            return
        self._generations.discard(generation)
        with contextlib.suppress(PlaywrightError, TimeoutError):
            async with asyncio.timeout(CONTENT_TIMEOUT):
                await generation.browser.close()

    async def _render_on(self, generation: _Generation, url: str, timeout: float, state: RenderState) -> RenderedPage:
        pooled = None
        page: Page | None = None
        reusable = False
        crashed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def crash(reason: str) -> None:
            if not crashed.done():
                crashed.set_result(reason)

        def disconnected(_browser: Browser) -> None:
            crash("the browser disconnected")

        generation.browser.on("disconnected", disconnected)
        try:
            try:
                pooled = await generation.contexts.take()
                pooled.state = state
                page = await pooled.context.new_page()
                state.main_frame = page.main_frame
            except PlaywrightError as exc:
                raise BrowserCrashed(f"cannot open a page: {exc.message}") from exc
            page.on("crash", lambda _page: crash("the page crashed"))
            try:
                rendered = await self._watch(self._navigate(page, state, url, timeout), crashed, timeout)
            except (BrowserCrashed, RenderTimeout):
                raise
            except Exception:
                reusable = not crashed.done()  # the page was refused or failed to load: the context is fine
                raise
            reusable = not crashed.done()
            return rendered
        finally:
            generation.browser.remove_listener("disconnected", disconnected)
            for pending in state.fetches:
                pending.cancel()
            await asyncio.gather(*state.fetches, return_exceptions=True)
            if pooled is not None:
                cleanup = asyncio.create_task(self._give_back(generation, pooled, page, reusable=reusable))
                self._cleanups.add(cleanup)
                cleanup.add_done_callback(self._cleanups.discard)

    async def _give_back(
        self, generation: _Generation, pooled: PooledContext, page: Page | None, *, reusable: bool
    ) -> None:
        """Clear the context for its next render, or close it; retire a browser that did not answer."""
        if not await generation.contexts.give_back(pooled, page, reusable=reusable and not generation.retired):
            self._retire(generation)

    async def _watch(
        self, navigation: Awaitable[RenderedPage], crashed: asyncio.Future[str], timeout: float
    ) -> RenderedPage:
        """Runs the navigation until it ends, the page crashes, or the overall deadline passes."""
        task = asyncio.ensure_future(navigation)
        deadline = timeout + max(self._options.settle_timeout, 0.0) + CONTENT_TIMEOUT
        waiters: set[asyncio.Future[Any]] = {task, crashed}
        try:
            done, _ = await asyncio.wait(waiters, timeout=deadline, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if crashed in done:
            raise BrowserCrashed(crashed.result())
        if task not in done or task.cancelled():
            raise RenderTimeout(f"render did not finish within {deadline:.1f}s")
        return task.result()

    async def _navigate(self, page: Page, state: RenderState, url: str, timeout: float) -> RenderedPage:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        target = url
        for _hop in range(MAX_REDIRECTS + 1):
            state.next_location = None
            remaining_ms = max(deadline - loop.time(), 0.001) * 1000
            try:
                response = await page.goto(target, wait_until="load", timeout=remaining_ms)
            except PlaywrightTimeoutError as exc:
                raise RenderTimeout(f"{target} did not load within {timeout:.1f}s") from exc
            except PlaywrightError as exc:
                if state.document_error is not None:
                    raise state.document_error from None
                if state.next_location is None:
                    raise _translate(exc, target) from exc
                target = state.next_location
                continue
            break
        else:
            raise TooManyRedirects(f"more than {MAX_REDIRECTS} redirects from {url}")
        state.following_document = False
        if self._options.settle_timeout > 0:
            with contextlib.suppress(PlaywrightTimeoutError):
                await page.wait_for_load_state("networkidle", timeout=self._options.settle_timeout * 1000)
        try:
            html = await page.content()
        except PlaywrightError as exc:
            raise _translate(exc, target) from exc
        return RenderedPage(
            final_url=page.url,
            status=response.status if response is not None else 0,
            headers=dict(state.document_headers),
            html=html,
            redirects=tuple(state.redirects),
            blocked_urls=tuple(state.blocked_urls),
        )


def _translate(exc: PlaywrightError, url: str) -> BrowserError:
    """A Playwright error of a render, as what the caller should do about it."""
    message = exc.message
    if isinstance(exc, TargetClosedError) or "crash" in message.lower():
        return BrowserCrashed(f"{url}: {message}")
    return NavigationFailed(f"{url}: {message.splitlines()[0] if message else type(exc).__name__}")


def _require_http(url: str) -> None:
    # Only http(s) requests are routed: a file: or data: document would bypass the egress guard.
    if urlsplit(url).scheme.lower() not in ALLOWED_SCHEMES:
        raise RequestBlocked(url, "only http and https URLs are rendered")
