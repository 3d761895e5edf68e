"""`crawlfleet-dashboard`: serve the operators' web dashboard (docs/dashboard.md)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

import uvicorn

from crawlfleet.common.logs import setup_logging
from crawlfleet.dashboard.app import build_app
from crawlfleet.dashboard.settings import DashboardSettings, settings_from_args

log = logging.getLogger("crawlfleet.dashboard")


def server(settings: DashboardSettings) -> uvicorn.Server:
    """A uvicorn server for the dashboard (not started); port 0 picks a free port."""
    host, port = settings.host_port
    config = uvicorn.Config(
        build_app(settings),
        host=host,
        port=port,
        ssl_certfile=str(settings.https_cert) if settings.https_cert else None,
        ssl_keyfile=str(settings.https_key) if settings.https_key else None,
        log_config=None,  # the process's logging, as every crawlfleet program
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=3,  # live pages hold streams open: do not wait for them
    )
    return uvicorn.Server(config)


def bind(settings: DashboardSettings) -> socket.socket:
    """The listening socket, bound before serving so that the address logged has the real port."""
    host, port = settings.host_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    settings = settings_from_args(sys.argv[1:] if argv is None else argv, os.environ)
    setup_logging(settings.log_level)
    # uvicorn's start and stop lines repeat ours (with terminal colours): its warnings are enough.
    logging.getLogger("uvicorn.error").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        sock = bind(settings)
    except OSError as exc:
        log.error("cannot listen on %s: %s", settings.listen, exc.strerror)
        return 1
    host, port = sock.getsockname()[:2]
    scheme = "https" if settings.uses_https else "http"
    shown = f"[{host}]" if ":" in host else host
    # The demo reads this line for the address.
    log.info("dashboard on %s://%s:%d/ for coordinators %s", scheme, shown, port, ",".join(settings.coordinators))
    # uvicorn stops on SIGTERM/SIGINT, then raises the signal again for the handler it found: a
    # handler that does nothing makes a stop on a signal exit 0, as the other programs do.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda signum, frame: None)
    server(settings).run(sockets=[sock])
    log.info("stopped")
    return 0
