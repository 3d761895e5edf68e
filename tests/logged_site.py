"""Websites that keep their own access log: each serves one loopback address (127.0.0.2,
127.0.0.3, …: one host each) and records when every request arrived and when its response was
sent, on the server's monotonic clock. Politeness tests judge the fleet from these logs, as the
owner of a site would, not from the queue's bookkeeping."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

# What a site answers a path with: a status and extra headers. It runs in the request's thread
# when the request arrives, so it may look at the clock, count, or block (a page that hangs).
Answer = Callable[[str], tuple[int, dict[str, str]]]


def ok(path: str) -> tuple[int, dict[str, str]]:
    return 200, {}


def no_links(path: str) -> Sequence[str]:
    return ()


@dataclass(frozen=True)
class Visit:
    """One request as the site saw it: arrived at `start` (request line and headers read), its
    response sent by `end` (or the client gone)."""

    path: str
    status: int
    start: float
    end: float


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for idle kept-alive connections

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client killed mid-request; its visit is logged all the same


class LoggedSite:
    """An HTML page on every path, answered `latency` seconds after the request arrived."""

    def __init__(
        self,
        address: str,
        *,
        latency: float = 0.1,
        answer: Answer = ok,
        links: Callable[[str], Sequence[str]] = no_links,
    ) -> None:
        self.address = address
        self.latency = latency
        self.answer = answer  # may be replaced while the site serves
        self.links = links  # the hrefs of the page at a path (for crawls)
        self._visits: list[Visit] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None

    @property
    def host(self) -> str:
        """The politeness host of the site's URLs: address and port."""
        assert self._server is not None, "not started"
        return f"{self.address}:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return f"http://{self.host}{path}"

    def visits(self) -> list[Visit]:
        """The log so far, in order of arrival."""
        with self._lock:
            return sorted(self._visits, key=lambda v: v.start)

    def served(self, status: int = 200) -> set[str]:
        """Paths answered with `status` so far."""
        return {v.path for v in self.visits() if v.status == status}

    def start(self) -> LoggedSite:
        server = _Server((self.address, 0), self._handler())
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.1,), name=f"site-{self.address}", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real sites (clients reuse connections)
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                start = time.monotonic()
                status = 0
                try:
                    status, headers = site.answer(self.path)
                    time.sleep(site.latency)  # the site's own slowness, not a wait of the test
                    anchors = "".join(f"<a href='{href}'>{href}</a>" for href in site.links(self.path))
                    body = f"<!doctype html><title>{self.path}</title><p>{status}</p>{anchors}".encode()
                    self.send_response(status)
                    for name, value in {"Content-Type": "text/html; charset=utf-8", **headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    self.wfile.flush()
                finally:
                    with site._lock:
                        site._visits.append(Visit(self.path, status, start, time.monotonic()))

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


def max_in_flight(visits: Iterable[Visit]) -> int:
    """The most requests that were in flight at one moment."""
    events = sorted([(v.start, 1) for v in visits] + [(v.end, -1) for v in visits], key=lambda e: (e[0], e[1]))
    most = current = 0
    for _, step in events:  # at equal times an end comes first: touching intervals do not overlap
        current += step
        most = max(most, current)
    return most


def overlapping(visits: Sequence[Visit]) -> list[tuple[Visit, Visit]]:
    """Pairs of requests that were in flight at the same moment."""
    ordered = sorted(visits, key=lambda v: v.start)
    return [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1 :] if b.start < a.end]
