"""The Prometheus HTTP endpoint of a process (coordinator or worker), and its ``--metrics-listen`` flag.

prometheus_client's server runs in a daemon thread of its own rather than on the event loop, so a
scrape never delays an RPC or a job. Each program serves the registry it owns.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from crawlfleet.common.flags import EnvFlags

log = logging.getLogger(__name__)

OFF_WORDS = frozenset({"", "off"})
# Where a bare ``:port`` binds.
LOOPBACK = "127.0.0.1"


def add_metrics_listen_flag(flags: EnvFlags, default: str) -> None:
    """``--metrics-listen``, with the program's default address."""
    flags.add(
        "--metrics-listen",
        default,
        "host:port to serve Prometheus metrics on (/metrics); a bare :port binds loopback only "
        "(give 0.0.0.0:port for every interface); off disables, port 0 picks a free one",
        metavar="HOST:PORT",
    )


def parse_listen(listen: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``host:port`` or ``[v6]:port`` address; None when metrics are off.

    Raises ``ValueError`` for anything else. An empty host means loopback: the endpoint has no
    authentication, so serving every interface takes an explicit ``0.0.0.0`` (or ``[::]``).
    """
    text = listen.strip()
    if text.lower() in OFF_WORDS:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"metrics address {listen!r} is not host:port (or off)")
    return host.removeprefix("[").removesuffix("]") or LOOPBACK, int(port)


class MetricsEndpoint:
    """A running /metrics endpoint; ``stop`` it when the process shuts down."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def host(self) -> str:
        """The address bound (loopback unless a host was given)."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The port served on (the one picked when asked for port 0)."""
        return int(self._server.server_address[1])

    @classmethod
    def start(cls, listen: str, registry: CollectorRegistry, *, best_effort: bool = False) -> MetricsEndpoint | None:
        """Serves ``registry`` on ``listen`` (see ``parse_listen``); None when metrics are off.

        ``best_effort`` (a program's default address): when another process holds the address
        (several coordinators or workers on one host), log a warning and serve nothing. Otherwise
        the address must bind, or this raises ``OSError``; a malformed one raises ``ValueError``.
        """
        address = parse_listen(listen)
        if address is None:
            return None
        host, port = address
        try:
            server, thread = start_http_server(port, host, registry=registry)
        except OSError as exc:
            if not best_effort:
                raise OSError(f"cannot serve metrics on {listen}: {exc}") from exc
            log.warning("no metrics endpoint: %s is taken (%s); set --metrics-listen", listen, exc.strerror)
            return None
        endpoint = cls(server, thread)
        shown = f"[{host}]" if ":" in host else host
        log.info("metrics on http://%s:%d/metrics", shown, endpoint.port)
        return endpoint

    async def stop(self) -> None:
        """Stops serving (within the server's half-second poll); safe to call twice."""
        await asyncio.to_thread(self._server.shutdown)
        self._server.server_close()
        self._thread.join()
