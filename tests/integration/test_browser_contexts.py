"""Reused browser contexts in a real Chromium: one render leaves nothing for the next.

A page stores a cookie (from the server and from script), localStorage, sessionStorage and an
IndexedDB database, and shows what it found before storing. Rendered twice on one reused context,
the second render must find nothing; the pool must really have reused the context. Between
renders a context keeps one blank page open, and is closed rather than reused without it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from playwright.async_api import Page, async_playwright

from crawlfleet.demo.serving import Reply, SiteServer
from crawlfleet.worker.pipeline.browser import CHROMIUM_ARGS, BrowserOptions, BrowserPool, RoutedResponse
from crawlfleet.worker.pipeline.browser_contexts import ContextPool, PooledContext
from crawlfleet.worker.pipeline.browser_routing import RenderState
from crawlfleet.worker.pipeline.chromium import find_chromium

pytestmark = [
    pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed (playwright install chromium)"),
    pytest.mark.timeout(60),
]

RENDER_TIMEOUT = 10.0
HOLD = 0.2  # how long a render keeps the only page slot while another waits for it
# Reports what the origin holds (the server's own cookie, set by this very response, is judged by
# the requests), then stores one of each; the report is written once IndexedDB answered.
STATEFUL_PAGE = b"""<!doctype html><html><body><p id=found>pending</p><script>
const found = [];
if (document.cookie.includes("script=")) found.push("cookie");
if (localStorage.getItem("k")) found.push("local");
if (sessionStorage.getItem("k")) found.push("session");
const opening = indexedDB.open("job-db");
opening.onupgradeneeded = () => opening.result.createObjectStore("s");
opening.onsuccess = () => {
  const db = opening.result;
  const read = db.transaction("s").objectStore("s").get("k");
  read.onsuccess = () => {
    if (read.result) found.push("indexeddb");
    const write = db.transaction("s", "readwrite");
    write.objectStore("s").put("v", "k");
    write.oncomplete = () => {
      document.cookie = "script=1; max-age=3600";
      localStorage.setItem("k", "v");
      sessionStorage.setItem("k", "v");
      document.getElementById("found").textContent = "found[" + found.join(",") + "]";
    };
  };
};
</script></body></html>"""


class RecordingFetch:
    """Loopback only, and what the server saw of cookies on each request."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.cookies_sent: list[str] = []

    async def __call__(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> RoutedResponse:
        assert url.startswith("http://127.0.0.1:")
        self.cookies_sent.append(next((v for k, v in headers.items() if k.lower() == "cookie"), ""))
        forwarded = {k: v for k, v in headers.items() if k.lower() not in ("host", "accept-encoding")}
        response = await self.client.request(method, url, headers=forwarded, content=body)
        return RoutedResponse(status=response.status_code, headers=dict(response.headers), body=response.content)


def reply(target: str) -> Reply:
    headers = {"Content-Type": "text/html; charset=utf-8", "Set-Cookie": "server=1; Max-Age=3600; Path=/"}
    return Reply(200, headers, STATEFUL_PAGE)


@pytest.fixture(scope="module")
def site() -> Iterator[SiteServer]:
    server = SiteServer(reply, name="stateful-site")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def fetch() -> AsyncIterator[RecordingFetch]:
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
        yield RecordingFetch(client)


async def render_found(pool: BrowserPool, url: str, fetch: RecordingFetch) -> str:
    page = await pool.render(url, timeout=RENDER_TIMEOUT, fetch=fetch)
    start = page.html.index("found[")
    return page.html[start : page.html.index("]", start) + 1]


@pytest.mark.parametrize("reuse", [5])
async def test_a_render_finds_nothing_the_previous_one_stored(
    site: SiteServer, fetch: RecordingFetch, reuse: int
) -> None:
    pool = BrowserPool(BrowserOptions(context_reuse=reuse, max_concurrent_pages=1))
    try:
        assert await render_found(pool, site.base + "/a", fetch) == "found[]"
        await pool.cleared()  # a context is cleared after its render returns, then taken again
        assert await render_found(pool, site.base + "/b", fetch) == "found[]"
        assert pool.contexts_opened == (1 if reuse > 1 else 2)
    finally:
        await pool.aclose()
    assert fetch.cookies_sent == ["", ""]


async def test_a_context_keeps_one_blank_page_open_and_is_closed_without_it(
    site: SiteServer, fetch: RecordingFetch
) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=find_chromium(), args=list(CHROMIUM_ARGS))
        contexts = ContextPool(browser, reuse=5, user_agent=None)
        pooled = await contexts.take()
        page = await load(pooled, site.base + "/a", fetch)
        assert await contexts.give_back(pooled, page, reusable=True)
        # The render's page is closed; the context's blank page stays, so the next page is never its only one.
        assert pooled.anchor is not None and pooled.context.pages == [pooled.anchor]
        assert pooled.anchor.url == "about:blank"
        assert await contexts.take() is pooled

        await pooled.anchor.close()
        page = await load(pooled, site.base + "/b", fetch)
        assert await contexts.give_back(pooled, page, reusable=True)
        assert await contexts.take() is not pooled  # closed, not offered again
        await browser.close()


async def test_without_the_blank_page_a_context_is_still_reused_and_keeps_no_page(
    site: SiteServer, fetch: RecordingFetch
) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=find_chromium(), args=list(CHROMIUM_ARGS))
        contexts = ContextPool(browser, reuse=5, user_agent=None, blank_page=False)
        pooled = await contexts.take()
        assert pooled.anchor is None and pooled.context.pages == []
        page = await load(pooled, site.base + "/a", fetch)
        assert await contexts.give_back(pooled, page, reusable=True)
        assert pooled.context.pages == []  # the render's page closed, nothing else open
        assert await contexts.take() is pooled
        await browser.close()


async def load(pooled: PooledContext, url: str, fetch: RecordingFetch) -> Page:
    """A page of the pooled context that loaded url through its route."""
    pooled.state = RenderState(fetch)
    page = await pooled.context.new_page()
    pooled.state.main_frame = page.main_frame
    await page.goto(url, timeout=RENDER_TIMEOUT * 1000)
    return page


class RecordedTimings:
    def __init__(self) -> None:
        self.seen: list[tuple[str, float]] = []

    def observe(self, stage: str, seconds: float) -> None:
        self.seen.append((stage, seconds))


async def test_the_wait_for_a_page_slot_is_timed_apart_from_the_render(site: SiteServer, fetch: RecordingFetch) -> None:
    timings = RecordedTimings()
    pool = BrowserPool(BrowserOptions(max_concurrent_pages=1), timings=timings)
    release_first = asyncio.Event()
    first_fetching = asyncio.Event()

    async def held_fetch(method: str, url: str, headers: dict[str, str], body: bytes | None) -> RoutedResponse:
        if url.endswith("/held"):  # the first render keeps the only page slot until released
            first_fetching.set()
            await release_first.wait()
        return await fetch(method, url, headers, body)

    try:
        first = asyncio.create_task(pool.render(site.base + "/held", timeout=RENDER_TIMEOUT, fetch=held_fetch))
        await asyncio.wait_for(first_fetching.wait(), RENDER_TIMEOUT)
        second_started = time.perf_counter()
        second = asyncio.create_task(pool.render(site.base + "/next", timeout=RENDER_TIMEOUT, fetch=held_fetch))
        await asyncio.sleep(HOLD)  # the hold being measured: the second render queues behind the first
        assert len(timings.seen) == 1 and not second.done()  # the first's wait only
        release_first.set()
        await asyncio.wait_for(asyncio.gather(first, second), RENDER_TIMEOUT * 2)
        second_took = time.perf_counter() - second_started
    finally:
        await pool.aclose()

    assert [stage for stage, _ in timings.seen] == ["render_wait", "render", "render_wait", "render"]
    waits = [seconds for stage, seconds in timings.seen if stage == "render_wait"]
    renders = [seconds for stage, seconds in timings.seen if stage == "render"]
    assert waits[1] >= HOLD  # the second render queued behind the first for its slot
    # ... and that wait is not in its render time: the two parts add up to what the call took.
    assert renders[1] + waits[1] <= second_took
    assert renders[1] <= second_took - HOLD
