"""``crawlfleet-worker``: runs one worker until SIGTERM or SIGINT.

The first signal starts a graceful shutdown (stop leasing, let jobs finish within the grace period,
release the rest) and the process exits 0. A second signal exits at once with status 1; the leases
then expire on the coordinator and the jobs are leased again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from crawlfleet.common.logs import setup_logging
from crawlfleet.common.metrics_http import MetricsEndpoint
from crawlfleet.worker.errors import WorkerError
from crawlfleet.worker.runner import Worker
from crawlfleet.worker.settings import DEFAULT_METRICS_LISTEN, WorkerSettings

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_FORCED = 1


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: parses flags, sets up logging, runs the worker, exits with its status."""
    settings = WorkerSettings.from_args(argv)
    setup_logging(settings.log_level, context={"worker_id": settings.worker_id})
    try:
        asyncio.run(serve(settings))
    except WorkerError as exc:
        log.critical("worker stopped on an error: %s", exc)
        sys.exit(EXIT_FAILED)
    sys.exit(EXIT_OK)


async def serve(settings: WorkerSettings) -> None:
    """Runs a worker with signal handlers installed; returns after a graceful shutdown."""
    loop = asyncio.get_running_loop()
    async with Worker(settings) as worker:
        try:
            metrics = MetricsEndpoint.start(
                settings.metrics_listen,
                worker.metrics.registry,
                best_effort=settings.metrics_listen == DEFAULT_METRICS_LISTEN,
            )
        except (ValueError, OSError) as exc:
            raise WorkerError(str(exc)) from exc
        shutdowns: list[asyncio.Task[None]] = []  # keeps the task referenced until it ends

        def on_signal(signum: int) -> None:
            name = signal.Signals(signum).name
            if shutdowns:
                log.warning("%s again: exiting at once, leases will expire", name)
                sys.stderr.flush()
                os._exit(EXIT_FORCED)  # no cleanup: a second signal means now
            log.info("%s: shutting down gracefully (send again to exit at once)", name)
            shutdowns.append(loop.create_task(worker.shutdown()))

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            await worker.run()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            if metrics is not None:
                await metrics.stop()
