"""Who this worker is, as told to the coordinator on every Lease call."""

from __future__ import annotations

import importlib.metadata
import socket

from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.worker.settings import WorkerSettings


def package_version() -> str:
    """The installed crawlfleet version, or ``0+unknown`` when running from an uninstalled tree."""
    try:
        return importlib.metadata.version("crawlfleet")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def worker_info(settings: WorkerSettings) -> pb.WorkerInfo:
    """The ``WorkerInfo`` of this process."""
    return pb.WorkerInfo(
        worker_id=settings.worker_id,
        host=socket.gethostname(),
        version=package_version(),
        kinds=settings.kinds,
        slots=settings.slots,
    )
