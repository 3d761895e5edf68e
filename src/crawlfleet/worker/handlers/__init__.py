"""Job handlers by kind."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from crawlfleet.worker.context import Handler, JobContext
from crawlfleet.worker.errors import WorkerError
from crawlfleet.worker.handlers.noop import run_noop
from crawlfleet.worker.handlers.scrape import run_scrape
from crawlfleet.worker.handlers.sitemap import run_sitemap

HANDLERS: Mapping[str, Handler] = {"noop": run_noop, "scrape": run_scrape, "sitemap": run_sitemap}

__all__ = ["HANDLERS", "Handler", "JobContext", "handlers_for"]


def handlers_for(kinds: Iterable[str]) -> dict[str, Handler]:
    """The handlers of ``kinds``; raises ``WorkerError`` naming any kind this worker cannot run."""
    kinds = list(kinds)
    unknown = [kind for kind in kinds if kind not in HANDLERS]
    if unknown:
        raise WorkerError(f"unknown job kinds {unknown}; known: {sorted(HANDLERS)}")
    return {kind: HANDLERS[kind] for kind in kinds}
