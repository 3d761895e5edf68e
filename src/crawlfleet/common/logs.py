"""Structured logging: one line per record with ``key=value`` context (worker, job, lease)."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

from crawlfleet.v1 import job_queue_pb2 as pb

# Attributes that records may carry through ``extra=`` or a ``LoggerAdapter``, printed in this order.
CONTEXT_FIELDS = ("worker_id", "job_id", "kind", "attempt", "lease")
LEASE_PREFIX_CHARS = 8  # enough to correlate with the coordinator's logs without printing tokens


class KeyValueFormatter(logging.Formatter):
    """Appends the context fields a record carries as ``key=value`` pairs (before any traceback)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        pairs = [f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if hasattr(record, name)]
        return f"{line} {' '.join(pairs)}" if pairs else line


class _WorkerIdFilter(logging.Filter):
    def __init__(self, worker_id: str) -> None:
        super().__init__()
        self._worker_id = worker_id

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "worker_id"):
            record.worker_id = self._worker_id
        return True


def setup_logging(level: str, worker_id: str) -> None:
    """Sends all records to stderr, each stamped with the worker id."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_WorkerIdFilter(worker_id))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO: too loud for a fleet.
    logging.getLogger("httpx").setLevel(logging.WARNING)


class JobLog(logging.LoggerAdapter[logging.Logger]):
    """A logger whose records carry the job id, kind, attempt and lease (token prefix).

    The context is read from the job only when a record is emitted: a worker makes one per job, and
    most of them never log above DEBUG.
    """

    def __init__(self, logger: logging.Logger, job: pb.LeasedJob) -> None:
        super().__init__(logger)
        self.job = job

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        job = self.job
        kwargs["extra"] = {
            "job_id": job.id,
            "kind": job.kind,
            "attempt": job.attempt,
            "lease": job.lease_token[:LEASE_PREFIX_CHARS],
        }
        return msg, kwargs


def job_log(logger: logging.Logger, job: pb.LeasedJob) -> JobLog:
    """A logger whose records carry the job's context (see ``JobLog``)."""
    return JobLog(logger, job)
