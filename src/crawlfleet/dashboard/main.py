"""`crawlfleet-dashboard`: serve the operators' web dashboard (docs/dashboard.md)."""

from __future__ import annotations

import logging
import os
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


def main(argv: Sequence[str] | None = None) -> int:
    settings = settings_from_args(sys.argv[1:] if argv is None else argv, os.environ)
    setup_logging(settings.log_level)
    serving = server(settings)
    scheme = "https" if settings.uses_https else "http"
    log.info("dashboard on %s://%s for coordinators %s", scheme, settings.listen, ",".join(settings.coordinators))
    serving.run()
    return 0
