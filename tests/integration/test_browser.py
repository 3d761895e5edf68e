"""The browser pool against a real Chromium and a real HTTP server on loopback.

Every request the browser makes goes through the test's ``fetch``, which refuses anything but
127.0.0.1 without connecting: it is the only path to the network, so nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from crawlfleet.demo.serving import Reply, SiteServer
from crawlfleet.worker.pipeline.browser import (
    BrowserCrashed,
    BrowserOptions,
    BrowserPool,
    RenderTimeout,
    RequestBlocked,
    RoutedResponse,
)
from crawlfleet.worker.pipeline.chromium import find_chromium
from tests.helpers import eventually

pytestmark = [
    pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed (playwright install chromium)"),
    pytest.mark.timeout(60),
]

RENDER_TIMEOUT = 10.0
# The shared pool settles as in production (network idle, up to 2 s), so pages that fetch after load
# are complete; the pools of the recycle and crash tests only render inline scripts and skip it.
SETTLED = BrowserOptions()
UNSETTLED = BrowserOptions(settle_timeout=0)

PAGES: dict[str, bytes] = {
    "/js": b"<html><body><div id=root></div>"
    b"<script>document.getElementById('root').textContent = 'Rendered by JS'</script></body></html>",
    "/uses-api": b"<html><body><div id=root>waiting</div><script>"
    b"fetch('/api/data').then(r => r.text()).then(t => { document.getElementById('root').textContent = t; });"
    b"</script></body></html>",
    "/api/data": b"inserted from the API",
    "/final": b"<html><body>the end of the chain</body></html>",
    "/metadata": b'<html><head><link rel=stylesheet href="http://169.254.169.254/latest/meta-data"></head><body>'
    b'<script src="http://10.0.0.1/x.js"></script><p>still rendered</p></body></html>',
    "/font": b"<html><head><style>@font-face { font-family: Remote; src: url('/font.woff2') format('woff2'); }"
    b"body { font-family: Remote; }</style></head><body>text in a remote font</body></html>",
    "/font.woff2": b"wOF2 not really a font",
    "/sub-redirects": b"<html><body><div id=root>waiting</div><link rel=stylesheet href='/r-evil'><script>"
    b"fetch('/r-api').then(r => r.text()).then(t => { document.getElementById('root').textContent = t; });"
    b"</script></body></html>",
}
# Opens the channels no route sees: a WebSocket and WebRTC (STUN over UDP) to listeners of the test.
LEAKY_PAGE = """<html><body><p id=ws>ws open</p><p id=rtc>rtc created</p><script>
const ws = new WebSocket("ws://127.0.0.1:{tcp}/");
ws.onclose = () => {{ document.getElementById("ws").textContent = "ws closed"; }};
try {{
  const pc = new RTCPeerConnection({{iceServers: [{{urls: "stun:127.0.0.1:{udp}"}}]}});
  pc.createDataChannel("x");
  pc.createOffer().then(offer => pc.setLocalDescription(offer));
}} catch (e) {{ document.getElementById("rtc").textContent = "no webrtc"; }}
</script></body></html>"""
REDIRECTS = {
    "/r1": (302, "/r2"),
    "/r2": (301, "/final"),
    "/r-api": (307, "/api/data"),
    "/r-evil": (302, "http://10.0.0.2/evil.png"),
}


class Site:
    """A loopback site that records the paths it served."""

    def __init__(self) -> None:
        self.extra: dict[str, bytes] = {}
        self.release = threading.Event()  # lets the slow handlers finish at teardown
        self.server = SiteServer(self._reply, name="browser-test-site")

    @property
    def hits(self) -> Counter[str]:
        return self.server.hits

    def url(self, path: str) -> str:
        return self.server.base + path

    def _reply(self, target: str) -> Reply:
        if target == "/slow":
            self.release.wait(5)
        if target in REDIRECTS:
            status, location = REDIRECTS[target]
            return Reply(status, {"Location": location}, b"")
        body = PAGES.get(target) or self.extra.get(target, b"<html><body>slow or unknown</body></html>")
        content_type = "text/plain" if target.startswith("/api/") else "text/html; charset=utf-8"
        return Reply(200, {"Content-Type": content_type, "X-Served-By": "test-site"}, body)


class LoopbackFetch:
    """The test's egress guard: loopback only, and the only code that opens connections for the browser."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.urls: list[str] = []

    async def __call__(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> RoutedResponse:
        self.urls.append(url)
        if urlsplit(url).hostname != "127.0.0.1":
            raise RequestBlocked(url)
        forwarded = {k: v for k, v in headers.items() if k.lower() not in ("host", "accept-encoding")}
        response = await self.client.request(method, url, headers=forwarded, content=body)
        return RoutedResponse(status=response.status_code, headers=dict(response.headers), body=response.content)


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    site = Site()
    site.server.start()
    yield site
    site.release.set()
    site.server.stop()


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
        yield client


@pytest.fixture
def fetch(client: httpx.AsyncClient) -> LoopbackFetch:
    return LoopbackFetch(client)


@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[BrowserPool]:
    pool = BrowserPool(SETTLED)
    await pool.start()
    yield pool
    await pool.aclose()


async def test_javascript_runs(pool: BrowserPool, site: Site, fetch: LoopbackFetch) -> None:
    page = await pool.render(site.url("/js"), timeout=RENDER_TIMEOUT, fetch=fetch)
    assert "Rendered by JS" in page.html
    assert page.status == 200
    assert page.headers["x-served-by"] == "test-site"
    assert page.final_url == site.url("/js")
    assert page.redirects == ()
    assert page.blocked_urls == ()


async def test_fetched_data_is_inserted(pool: BrowserPool, site: Site, fetch: LoopbackFetch) -> None:
    page = await pool.render(site.url("/uses-api"), timeout=RENDER_TIMEOUT, fetch=fetch)
    assert "inserted from the API" in page.html
    assert site.url("/api/data") in fetch.urls


async def test_redirect_chain_is_followed_through_fetch(pool: BrowserPool, site: Site, fetch: LoopbackFetch) -> None:
    page = await pool.render(site.url("/r1"), timeout=RENDER_TIMEOUT, fetch=fetch)
    assert page.final_url == site.url("/final")
    assert page.redirects == ((site.url("/r1"), 302), (site.url("/r2"), 301))
    assert page.status == 200
    assert "the end of the chain" in page.html
    # Each hop was a request of its own through the guard, not one Chromium made by itself.
    assert [url for url in fetch.urls if "/r" in url or "/final" in url] == [
        site.url("/r1"),
        site.url("/r2"),
        site.url("/final"),
    ]


async def test_refused_sub_requests_are_reported(pool: BrowserPool, site: Site, fetch: LoopbackFetch) -> None:
    page = await pool.render(site.url("/metadata"), timeout=RENDER_TIMEOUT, fetch=fetch)
    assert "still rendered" in page.html
    assert set(page.blocked_urls) == {"http://169.254.169.254/latest/meta-data", "http://10.0.0.1/x.js"}


async def test_refused_document(pool: BrowserPool, fetch: LoopbackFetch) -> None:
    with pytest.raises(RequestBlocked) as caught:
        await pool.render("http://10.0.0.1/", timeout=RENDER_TIMEOUT, fetch=fetch)
    assert caught.value.url == "http://10.0.0.1/"


async def test_non_http_document_is_refused(pool: BrowserPool, fetch: LoopbackFetch) -> None:
    with pytest.raises(RequestBlocked):
        await pool.render("file:///etc/passwd", timeout=RENDER_TIMEOUT, fetch=fetch)
    assert fetch.urls == []


async def test_fonts_are_not_fetched(pool: BrowserPool, site: Site, fetch: LoopbackFetch) -> None:
    page = await pool.render(site.url("/font"), timeout=RENDER_TIMEOUT, fetch=fetch)
    assert "text in a remote font" in page.html
    assert fetch.urls == [site.url("/font")]
    assert "/font.woff2" not in site.hits


async def test_sub_request_redirects_are_followed_through_fetch(
    pool: BrowserPool, site: Site, fetch: LoopbackFetch
) -> None:
    page = await pool.render(site.url("/sub-redirects"), timeout=RENDER_TIMEOUT, fetch=fetch)
    assert "inserted from the API" in page.html
    assert page.blocked_urls == ("http://10.0.0.2/evil.png",)
    assert site.url("/api/data") in fetch.urls


async def test_websockets_and_webrtc_do_not_connect(pool: BrowserPool, site: Site, fetch: LoopbackFetch) -> None:
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        tcp.setblocking(False)
        udp.bind(("127.0.0.1", 0))
        udp.setblocking(False)
        site.extra["/leaky"] = LEAKY_PAGE.format(tcp=tcp.getsockname()[1], udp=udp.getsockname()[1]).encode()
        page = await pool.render(site.url("/leaky"), timeout=RENDER_TIMEOUT, fetch=fetch)
        assert "ws closed" in page.html
        assert "no webrtc" in page.html
        with pytest.raises(BlockingIOError):
            tcp.accept()
        with pytest.raises(BlockingIOError):
            udp.recv(2048)


async def test_slow_page_times_out(pool: BrowserPool, site: Site, fetch: LoopbackFetch) -> None:
    with pytest.raises(RenderTimeout):
        await pool.render(site.url("/slow"), timeout=1, fetch=fetch)
    page = await pool.render(site.url("/js"), timeout=RENDER_TIMEOUT, fetch=fetch)
    assert "Rendered by JS" in page.html


async def test_concurrent_renders(pool: BrowserPool, site: Site, fetch: LoopbackFetch) -> None:
    pages = await asyncio.gather(
        *(pool.render(site.url(path), timeout=RENDER_TIMEOUT, fetch=fetch) for path in ["/js", "/uses-api"] * 3)
    )
    assert all("Rendered by JS" in page.html for page in pages[::2])
    assert all("inserted from the API" in page.html for page in pages[1::2])


async def test_browser_is_recycled(site: Site, fetch: LoopbackFetch) -> None:
    pool = BrowserPool(BrowserOptions(settle_timeout=0, pages_per_browser=2))
    try:
        for _ in range(3):
            page = await pool.render(site.url("/js"), timeout=RENDER_TIMEOUT, fetch=fetch)
            assert "Rendered by JS" in page.html
        assert pool.restarts == 1
    finally:
        await pool.aclose()


def browser_pids() -> set[int]:
    """Chromium browser processes started from this test process: its descendants named chrom* whose
    parent is not (Playwright's driver starts them). Read from /proc."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited meanwhile
        pid = int(text.split(" ", 1)[0])
        name, _, rest = text[text.index("(") + 1 :].rpartition(")")
        names[pid], parents[pid] = name, int(rest.split()[1])

    def descends_from_us(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == os.getpid():
                return True
        return False

    return {
        pid
        for pid, name in names.items()
        if "chrom" in name and "chrom" not in names.get(parents[pid], "") and descends_from_us(pid)
    }


async def test_crash_fails_the_render_and_the_pool_recovers(site: Site, fetch: LoopbackFetch) -> None:
    before = browser_pids()
    pool = BrowserPool(UNSETTLED)
    try:
        await pool.start()
        (pid,) = browser_pids() - before
        in_flight = asyncio.create_task(pool.render(site.url("/slow"), timeout=RENDER_TIMEOUT, fetch=fetch))

        async def slow_page_requested() -> bool:
            return site.url("/slow") in fetch.urls

        await eventually(slow_page_requested, timeout=10, interval=0.01, what="the slow page to be requested")

        os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrowserCrashed):
            await in_flight

        async def disconnected() -> bool:
            return not pool.connected

        await eventually(disconnected, timeout=10, interval=0.01, what="the browser to disconnect")

        page = await pool.render(site.url("/js"), timeout=RENDER_TIMEOUT, fetch=fetch)
        assert "Rendered by JS" in page.html
        assert pool.restarts == 1
    finally:
        await pool.aclose()
