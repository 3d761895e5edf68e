"""The guarded fetcher against a real HTTP server on loopback: content codings and the body cap.

A compressed body is inflated a bounded step at a time and the cap applies to the bytes as they come
out, so a bomb costs the worker about the cap in memory whatever its compression ratio.
"""

from __future__ import annotations

import functools
import gzip
import http.cookiejar
import threading
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest

from crawlfleet.common.robots import MAX_BODY_BYTES
from crawlfleet.worker.pipeline.egress import EgressPolicy
from crawlfleet.worker.pipeline.fetch import FetchError, GuardedFetcher
from crawlfleet.worker.pipeline.robots_fetch import fetch_robots
from tests.helpers import QuietHandler, serving
from tests.site import BOMB_BYTES, BOMB_ENCODINGS, LocalSite, bomb, compression_bomb

pytestmark = pytest.mark.timeout(60)

CAP = 1024 * 1024
# What a refused bomb may cost the fetch: the cap it fills, plus a few megabytes of slack for the
# client's buffers. The bomb inflates to 1 GiB, 1024 times the cap.
MEMORY_BOUND = CAP + 4 * 1024 * 1024
TEXT = b"<!doctype html><title>t</title>" + b"".join(b"<p>line %d</p>" % n for n in range(20_000))


def gzip_members(data: bytes) -> bytes:
    """data as two gzip members laid end to end (what `cat a.gz b.gz` makes)."""
    half = len(data) // 2
    return gzip.compress(data[:half]) + gzip.compress(data[half:])


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


ENCODED = {
    "identity": ("", TEXT),
    "gzip": ("gzip", gzip.compress(TEXT)),
    "gzip-members": ("gzip", gzip_members(TEXT)),
    "deflate": ("deflate", zlib.compress(TEXT)),
    "raw-deflate": ("deflate", raw_deflate(TEXT)),
    "stacked": ("deflate, gzip", gzip.compress(zlib.compress(TEXT))),
    "x-gzip": ("x-gzip", gzip.compress(TEXT)),
}


def encoded_route(encoding: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "text/html"}
    if encoding:
        headers["Content-Encoding"] = encoding
    return 200, headers, body


@pytest.fixture(scope="module")
def site() -> Iterator[LocalSite]:
    served = LocalSite()
    for name, (encoding, body) in ENCODED.items():
        served.routes[f"/encoded/{name}"] = functools.partial(encoded_route, encoding, body)
    for encoding in BOMB_ENCODINGS:
        served.routes[f"/bomb/{encoding}"] = bomb(BOMB_BYTES, encoding)
    served.routes["/cap/exact"] = lambda: encoded_route("gzip", gzip.compress(b"x" * CAP))
    served.routes["/cap/over"] = lambda: encoded_route("gzip", gzip.compress(b"x" * (CAP + 1)))
    served.routes["/robots/long"] = lambda: (200, {"Content-Type": "text/plain"}, b"#" * (MAX_BODY_BYTES + 1000))
    served.routes["/robots/bomb"] = bomb(BOMB_BYTES, "gzip", content_type="text/plain")
    served.start()
    yield served
    served.stop()


@pytest.fixture(scope="module")
async def fetcher() -> AsyncIterator[GuardedFetcher]:
    client = GuardedFetcher(EgressPolicy.from_settings(allow_loopback=True), user_agent="test", max_connections=4)
    yield client
    await client.aclose()


@pytest.mark.parametrize("name", list(ENCODED))
async def test_content_codings_are_decoded(fetcher: GuardedFetcher, site: LocalSite, name: str) -> None:
    fetched = await fetcher.get(site.url(f"/encoded/{name}"), max_bytes=CAP, timeout=10)
    assert fetched.body == TEXT


async def test_the_cap_counts_decoded_bytes(fetcher: GuardedFetcher, site: LocalSite) -> None:
    fetched = await fetcher.get(site.url("/cap/exact"), max_bytes=CAP, timeout=10)
    assert len(fetched.body) == CAP
    with pytest.raises(FetchError) as caught:
        await fetcher.get(site.url("/cap/over"), max_bytes=CAP, timeout=10)
    assert (caught.value.error_type, caught.value.retryable) == ("body_too_large", False)


@pytest.mark.parametrize("encoding", BOMB_ENCODINGS)
async def test_a_compression_bomb_is_refused_in_bounded_memory(
    fetcher: GuardedFetcher, site: LocalSite, encoding: str
) -> None:
    compression_bomb(BOMB_BYTES, encoding)  # built before measuring: the server's bytes are not the client's
    tracemalloc.start()
    try:
        with pytest.raises(FetchError) as caught:
            await fetcher.get(site.url(f"/bomb/{encoding}"), max_bytes=CAP, timeout=30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (caught.value.error_type, caught.value.retryable) == ("body_too_large", False)
    assert peak < MEMORY_BOUND, f"peak {peak / 2**20:.1f} MiB while refusing a {BOMB_BYTES >> 20} MiB bomb"


async def test_truncating_keeps_the_first_bytes_instead_of_failing(fetcher: GuardedFetcher, site: LocalSite) -> None:
    fetched = await fetcher.get(site.url("/cap/over"), max_bytes=CAP, timeout=10, truncate=True)
    assert fetched.body == b"x" * CAP


async def test_a_robots_txt_is_read_to_its_first_500_kib(fetcher: GuardedFetcher, site: LocalSite) -> None:
    long = await fetch_robots(fetcher, site.url("/robots/long"), timeout=10)
    assert (long.status, len(long.body)) == (200, MAX_BODY_BYTES)
    compression_bomb(BOMB_BYTES, "gzip")  # built before measuring
    tracemalloc.start()
    try:
        bombed = await fetch_robots(fetcher, site.url("/robots/bomb"), timeout=30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (bombed.status, bombed.body) == (200, bytes(MAX_BODY_BYTES))
    assert peak < MEMORY_BOUND
    missing = await fetch_robots(fetcher, site.url("/robots/none"), timeout=10)
    assert (missing.status, missing.body, missing.found) == (404, b"", False)


async def test_the_latency_is_the_wait_for_the_response_headers(fetcher: GuardedFetcher, site: LocalSite) -> None:
    """What the adaptive host delay learns from: the server's think time before it answers."""
    answered = threading.Event()

    def thinking() -> tuple[int, dict[str, str], bytes]:
        answered.wait(0.2)  # the server thinks for 200 ms before the headers
        return encoded_route("", TEXT)

    site.routes["/thinking"] = thinking
    fetched = await fetcher.get(site.url("/thinking"), max_bytes=CAP, timeout=10)
    assert fetched.latency >= 0.2


class CookieEcho(QuietHandler):
    """Answers with the Cookie header it was sent, and sets a cookie."""

    def do_GET(self) -> None:
        cookies = (self.headers.get("Cookie") or "").encode()
        self.answer(cookies, "text/plain", Set_Cookie="visited=1; Path=/; Max-Age=3600")


@pytest.fixture
def cookie_echo() -> Iterator[str]:
    with serving(CookieEcho) as base:
        yield base


async def test_no_cookie_of_one_request_is_sent_with_the_next(fetcher: GuardedFetcher, cookie_echo: str) -> None:
    # One client serves every job of a worker: a cookie kept would follow the next job to the site.
    first = await fetcher.get(cookie_echo + "/a", max_bytes=CAP, timeout=10)
    assert first.headers.get("set-cookie", "").startswith("visited=1")
    second = await fetcher.get(cookie_echo + "/b", max_bytes=CAP, timeout=10)
    assert second.body == b""


async def test_set_cookie_headers_are_not_even_parsed(
    fetcher: GuardedFetcher, cookie_echo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing is kept, so parsing them would be work for nothing on every response.
    parsed: list[object] = []

    def make_cookies(jar: http.cookiejar.CookieJar, *args: object) -> list[http.cookiejar.Cookie]:
        parsed.append(args)
        return []

    monkeypatch.setattr(http.cookiejar.CookieJar, "make_cookies", make_cookies)
    fetched = await fetcher.get(cookie_echo + "/a", max_bytes=CAP, timeout=10)
    assert fetched.headers.get("set-cookie", "").startswith("visited=1")
    assert parsed == []


class StalledBody(QuietHandler):
    """Sends the headers and the start of the body, then nothing until released."""

    release = threading.Event()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"<!doctype html><p>the start")
        self.wfile.flush()
        self.release.wait(30)


@pytest.fixture
def stalled_body() -> Iterator[str]:
    with serving(StalledBody) as base:
        try:
            yield base
        finally:
            StalledBody.release.set()


async def test_a_body_that_stops_coming_fails_at_the_fetch_deadline(fetcher: GuardedFetcher, stalled_body: str) -> None:
    url = stalled_body + "/stalled"
    with pytest.raises(FetchError) as raised:
        await fetcher.get(url, max_bytes=CAP, timeout=0.5)
    assert (raised.value.error_type, raised.value.retryable) == ("timeout", True)
    assert str(raised.value) == f"fetching {url} took longer than 0.5s"


async def test_reads_and_writes_set_no_timeout_of_their_own(
    fetcher: GuardedFetcher, site: LocalSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One deadline bounds the whole fetch; a cancel scope per read or write was CPU for nothing.
    url = site.url("/encoded/identity")
    await fetcher.get(url, max_bytes=CAP, timeout=10)  # opens a connection, kept alive
    scopes: list[float | None] = []
    real_fail_after = anyio.fail_after

    def counting(delay: float | None, shield: bool = False) -> object:
        scopes.append(delay)
        return real_fail_after(delay, shield)

    monkeypatch.setattr(anyio, "fail_after", counting)
    fetched = await fetcher.get(url, max_bytes=CAP, timeout=10)  # on the kept-alive connection
    assert fetched.body == ENCODED["identity"][1]
    assert scopes == []
