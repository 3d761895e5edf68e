"""HTTP fetches through the egress guard: pages, redirect hops, images and browser requests.

One `GuardedFetcher` per worker: an httpx client whose connections are made by
`GuardedNetworkBackend`, redirects followed by hand (each hop is a new guarded connection and is
recorded), bodies inflated a bounded step at a time and capped as they come out (`decoding`), and
every failure mapped to a `FetchError` with a failure class the queue understands (retryable or not).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.message
import functools
import re
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpcore
import httpx

from crawlfleet.worker.errors import JobError
from crawlfleet.worker.pipeline.decoding import ACCEPT_ENCODING, DECODE_STEP, CorruptEncoding, decoded, inflaters
from crawlfleet.worker.pipeline.egress import DestinationBlocked, EgressPolicy, GuardedNetworkBackend, ResolutionFailed
from crawlfleet.worker.pipeline.settings import MAX_REDIRECTS

_CHARSET_SNIFF_BYTES = 4096
# <meta charset="x"> or <meta http-equiv="Content-Type" content="text/html; charset=x">
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)


class FetchError(JobError):
    """A fetch failed; `error_type` is its failure class."""


@dataclass(frozen=True, kw_only=True)
class FetchedResponse:
    url: str
    status: int
    headers: httpx.Headers
    body: bytes
    # (url, status) of each redirect followed, in order.
    redirects: tuple[tuple[str, int], ...] = field(default=())
    # Seconds from sending the (last) request to its response headers: the server's latency.
    latency: float = 0.0

    @property
    def content_type(self) -> str:
        """The media type, lower-case, without parameters."""
        return str(self.headers.get("content-type", "")).split(";", 1)[0].strip().lower()

    @functools.cached_property
    def charset(self) -> str:
        """The declared charset (header, then <meta charset>), else utf-8."""
        declared = declared_charset(self.headers.get("content-type", ""))
        if declared:
            return declared.lower()
        match = _META_CHARSET.search(self.body[:_CHARSET_SNIFF_BYTES])
        return match.group(1).decode("ascii").lower() if match else "utf-8"

    def text(self) -> str:
        """The body decoded with its charset; unknown charsets fall back to utf-8, bad bytes replaced."""
        try:
            return self.body.decode(self.charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


@functools.lru_cache(maxsize=256)
def declared_charset(content_type: str) -> str | None:
    """The charset parameter of a Content-Type value, lower-case (parsed as httpx parses it).
    Cached: a site answers with a handful of distinct values, and parsing one is not cheap."""
    message = email.message.Message()
    message["content-type"] = content_type
    return message.get_content_charset(failobj=None)


class NoCookies(httpx.Cookies):
    """A cookie store that keeps nothing and so parses no Set-Cookie header at all.

    The client is shared by every job of the worker: a cookie one job's page set must not be sent
    with another's (nor added to a browser's requests, whose context holds its own). Storing none
    is what a jar refusing every domain did, without building urllib request and response
    wrappers around every response to find that out.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


def guarded_client(policy: EgressPolicy, *, user_agent: str, max_connections: int) -> httpx.AsyncClient:
    """An httpx client whose every connection passes the egress policy."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx takes no network backend; swap in a pool built on ours (same settings httpx uses).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=5.0,
        network_backend=GuardedNetworkBackend(policy),
    )
    client = httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,  # followed by hand, hop by hop
        # Only the codings `decoding` can inflate with a bound on each step's output.
        headers={"User-Agent": user_agent, "Accept-Encoding": ACCEPT_ENCODING},
        trust_env=False,  # no proxy from the environment may route around the guard
    )
    # httpx's setter would copy it into a plain store; every response goes through this one.
    client._cookies = NoCookies()
    return client


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether kind is anywhere in exc's chain of causes (exception groups included)."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return True
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return False


def _failure(exc: BaseException, url: str) -> FetchError:
    """The failure class of an exception raised while fetching url."""
    if isinstance(exc, DestinationBlocked):
        return FetchError(str(exc), error_type="blocked_destination", retryable=False)
    if isinstance(exc, ResolutionFailed):
        return FetchError(str(exc), error_type="dns_error", retryable=True)
    if isinstance(exc, httpx.TimeoutException):
        return FetchError(f"timed out fetching {url} ({exc.__class__.__name__})", error_type="timeout", retryable=True)
    if isinstance(exc, httpx.ConnectError):
        text = str(exc)
        if _caused_by(exc, ssl.SSLError):
            # A certificate or handshake problem does not fix itself within a retry's backoff.
            return FetchError(f"TLS error with {url}: {text}", error_type="tls_error", retryable=False)
        if _caused_by(exc, ConnectionRefusedError):
            return FetchError(f"connection refused by {url}", error_type="connection_refused", retryable=True)
        return FetchError(f"cannot connect to {url}: {text}", error_type="connect_error", retryable=True)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return FetchError(f"invalid URL {url}: {exc}", error_type="invalid_url", retryable=False)
    if isinstance(exc, httpx.TooManyRedirects):
        return FetchError(str(exc), error_type="too_many_redirects", retryable=False)
    return FetchError(f"transport error fetching {url}: {exc!r}", error_type="transport_error", retryable=True)


class GuardedFetcher:
    """The worker's HTTP client: guarded connections, capped bodies, classified failures."""

    def __init__(self, policy: EgressPolicy, *, user_agent: str, max_connections: int) -> None:
        self.policy = policy
        self._client = guarded_client(policy, user_agent=user_agent, max_connections=max_connections)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(
        self,
        url: str,
        *,
        max_bytes: int,
        timeout: float,
        headers: dict[str, str] | None = None,
        max_redirects: int = MAX_REDIRECTS,
        truncate: bool = False,
    ) -> FetchedResponse:
        """GET url, following redirects (each hop guarded and recorded) within `timeout` in all.
        A body past `max_bytes` fails the fetch, or with `truncate` is cut there (robots.txt)."""
        redirects: list[tuple[str, int]] = []
        async with _classified(url, timeout):
            request = self._client.build_request("GET", url, headers=headers, timeout=timeout)
            for _ in range(max_redirects + 1):
                fetched, next_request = await self._send(request, max_bytes, truncate=truncate)
                if next_request is None:
                    return dataclasses.replace(fetched, redirects=tuple(redirects))
                redirects.append((fetched.url, fetched.status))
                request = next_request
        raise FetchError(
            f"more than {max_redirects} redirects from {url}", error_type="too_many_redirects", retryable=False
        )

    async def request_once(
        self, method: str, url: str, *, headers: dict[str, str], body: bytes | None, max_bytes: int, timeout: float
    ) -> FetchedResponse:
        """One request without following redirects (the browser follows them itself)."""
        async with _classified(url, timeout):
            request = self._client.build_request(method, url, headers=headers, content=body, timeout=timeout)
            fetched, _ = await self._send(request, max_bytes, read_redirect_body=True)
            return fetched

    async def _send(
        self, request: httpx.Request, max_bytes: int, *, read_redirect_body: bool = False, truncate: bool = False
    ) -> tuple[FetchedResponse, httpx.Request | None]:
        """One exchange; the body of a redirect we follow ourselves is not worth reading."""
        sent = time.monotonic()
        response = await self._client.send(request, stream=True)
        latency = time.monotonic() - sent
        try:
            follow = response.next_request
            skip_body = follow is not None and not read_redirect_body
            body = b"" if skip_body else await read_capped(response, max_bytes, truncate=truncate)
        finally:
            await response.aclose()
        fetched = FetchedResponse(
            url=str(response.url), status=response.status_code, headers=response.headers, body=body, latency=latency
        )
        return fetched, follow


@contextlib.asynccontextmanager
async def _classified(url: str, timeout: float) -> AsyncIterator[None]:
    """Bound the block by `timeout` in all, and turn what it raises into a classified FetchError."""
    try:
        async with asyncio.timeout(timeout):
            yield
    except TimeoutError as exc:
        raise FetchError(f"fetching {url} took longer than {timeout:g}s", error_type="timeout", retryable=True) from exc
    except FetchError:
        raise
    except (httpx.HTTPError, DestinationBlocked, ResolutionFailed, httpx.InvalidURL, CorruptEncoding) as exc:
        raise _failure(exc, url) from exc


async def read_capped(response: httpx.Response, max_bytes: int, *, truncate: bool = False) -> bytes:
    """The decoded body, refused once it passes max_bytes (with `truncate`: its first max_bytes).

    The raw stream is inflated here, a bounded step at a time, and the cap is checked on each step's
    output: a compression bomb is refused (or cut) having inflated at most one step past the cap.
    """
    declared = response.headers.get("content-length", "")
    # Content-Length counts encoded bytes: only an identity body can be refused up front.
    if not truncate and declared.isdigit() and int(declared) > max_bytes and "content-encoding" not in response.headers:
        raise too_large(max_bytes)
    layers = inflaters(response.headers.get("content-encoding", ""))
    chunks: list[bytes] = []
    size = 0
    pieces = decoded(response.aiter_raw(), layers, step=min(DECODE_STEP, max_bytes + 1))
    async with contextlib.aclosing(pieces):
        async for piece in pieces:
            size += len(piece)
            if size > max_bytes:
                if not truncate:
                    raise too_large(max_bytes)
                chunks.append(piece[: len(piece) - (size - max_bytes)])
                break
            chunks.append(piece)
    return b"".join(chunks)


def too_large(max_bytes: int) -> FetchError:
    """A body over the cap: the page will not shrink on a retry."""
    return FetchError(f"body larger than {max_bytes} bytes", error_type="body_too_large", retryable=False)
