"""Job handlers by kind, imported only for the kinds a worker runs: the scrape pipeline's modules
(HTTP client, browser driver, image codecs) cost a no-op worker a third of a second of start-up
CPU it never needs."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping

from crawlfleet.worker.context import Handler, JobContext
from crawlfleet.worker.errors import WorkerError

# Each kind's handler as "module:function", imported by handlers_for.
HANDLER_PATHS: Mapping[str, str] = {
    "noop": "crawlfleet.worker.handlers.noop:run_noop",
    "scrape": "crawlfleet.worker.handlers.scrape:run_scrape",
    "sitemap": "crawlfleet.worker.handlers.sitemap:run_sitemap",
}

__all__ = ["HANDLER_PATHS", "Handler", "JobContext", "handlers_for"]


def handlers_for(kinds: Iterable[str]) -> dict[str, Handler]:
    """The handlers of ``kinds``; raises ``WorkerError`` naming any kind this worker cannot run."""
    kinds = list(kinds)
    unknown = [kind for kind in kinds if kind not in HANDLER_PATHS]
    if unknown:
        raise WorkerError(f"unknown job kinds {unknown}; known: {sorted(HANDLER_PATHS)}")
    return {kind: _load(HANDLER_PATHS[kind]) for kind in kinds}


def _load(path: str) -> Handler:
    module, name = path.split(":")
    handler: Handler = getattr(importlib.import_module(module), name)
    return handler
