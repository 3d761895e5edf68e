"""A small HTTP/1.1 site server on loopback, in a daemon thread: the scaffolding of the demo shop, the
benchmark site and the test sites, which differ only in what they answer.

A site is a function from the request target (path and query) to a ``Reply``. The server counts hits
per path (and, when asked, logs each request with its time and User-Agent), keeps connections alive
(as real sites do, so clients reuse them), answers HEAD like GET without the body, answers
conditional requests (``If-None-Match``, ``If-Modified-Since``) with 304 when the reply's ``ETag``
or ``Last-Modified`` says it has not changed, and can serve HTTPS with a given certificate.
"""

from __future__ import annotations

import email.utils
import http.server
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import NamedTuple
from urllib.parse import urlsplit

IDLE_TIMEOUT = 30.0  # seconds a kept-alive connection may stay idle


class Reply(NamedTuple):
    status: int
    headers: Mapping[str, str]
    body: bytes


class Request(NamedTuple):
    """One request as the site saw it: when it arrived (time.monotonic), its path, its User-Agent."""

    at: float
    path: str
    user_agent: str


Resolver = Callable[[str], Reply]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for idle kept-alive connections

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients (browsers above all) hang up mid-response; nothing to report


class SiteServer:
    """Serves ``resolve`` on ``host:port``; ``start()`` returns the base URL, ``stop()`` shuts it down."""

    def __init__(self, resolve: Resolver, *, name: str = "site", log_requests: bool = False) -> None:
        self.resolve = resolve
        self.name = name
        self.base = ""
        self.hits: Counter[str] = Counter()  # path -> requests served
        self.target_hits: Counter[str] = Counter()  # request target (path and query) -> requests served
        # Every request in arrival order, when log_requests (tests; a benchmark's would grow unbounded).
        self.requests: list[Request] = []
        self._log_requests = log_requests
        self._lock = threading.Lock()
        self._server: _Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    def start(self, host: str = "127.0.0.1", port: int = 0, *, tls: tuple[Path, Path] | None = None) -> str:
        """Serve in a thread (port 0: any free port); with ``tls=(certificate, key)`` over HTTPS."""
        if self._server is not None:
            return self.base
        server = _Server((host, port), self._handler())
        scheme = "http"
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
            scheme = "https"
        self._server = server
        self.base = f"{scheme}://{host}:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, args=(0.1,), name=self.name, daemon=True).start()
        return self.base

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SiteServer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "crawlfleet-site/1"
            timeout = IDLE_TIMEOUT
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def do_GET(self) -> None:
                self._respond(send_body=True)

            def do_HEAD(self) -> None:
                self._respond(send_body=False)

            def _respond(self, *, send_body: bool) -> None:
                arrived = time.monotonic()
                path = urlsplit(self.path).path
                with site._lock:
                    site.hits[path] += 1
                    site.target_hits[self.path] += 1
                    if site._log_requests:
                        site.requests.append(Request(arrived, path, self.headers.get("User-Agent", "")))
                status, headers, body = site.resolve(self.path)
                conditions = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
                if status == 200 and not_modified(headers, *conditions):
                    status, body = 304, b""
                    headers = {k: v for k, v in headers.items() if k.lower() in _NOT_MODIFIED_HEADERS}
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if status != 304:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


# What a 304 repeats of the 200 it stands for (RFC 9110, 15.4.5).
_NOT_MODIFIED_HEADERS = frozenset({"etag", "last-modified", "cache-control", "expires", "vary", "content-location"})


def not_modified(reply: Mapping[str, str], if_none_match: str | None, if_modified_since: str | None) -> bool:
    """Whether a GET with these conditions gets a 304 for this reply (RFC 9110, 13.2.2):
    If-None-Match against the reply's ETag (weakly compared) and, only without it, If-Modified-Since
    against its Last-Modified."""
    headers = {k.lower(): v for k, v in reply.items()}
    if if_none_match is not None:
        etag = headers.get("etag")
        if etag is None:
            return False
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or etag.removeprefix("W/") in tags
    last_modified = headers.get("last-modified")
    if if_modified_since is None or last_modified is None:
        return False
    try:
        return email.utils.parsedate_to_datetime(last_modified) <= email.utils.parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False
