"""What a handler gets besides its job: settings, the pipeline's shared resources, a logger, an
executor, and the robots.txt gate."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from crawlfleet.common.logs import JobLog
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.pipeline.resources import PipelineResources
from crawlfleet.worker.robots import RobotsGate
from crawlfleet.worker.settings import WorkerSettings

_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True, slots=True)  # slots: one is made per job
class JobContext:
    """Per-job view of the worker's shared resources."""

    settings: WorkerSettings
    resources: PipelineResources
    log: JobLog
    executor: Executor
    # None: jobs are not checked against robots.txt (the pipeline run without a coordinator).
    robots: RobotsGate | None = None

    async def run_blocking(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Runs CPU-heavy or blocking ``fn`` off the event loop, so heartbeats are never starved."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    async def run_blocking_if_large(
        self, size: int, inline_up_to: int, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """``fn`` on the event loop when its input (``size``) is at most ``inline_up_to``, else as
        ``run_blocking``: handing small work to a thread and back costs more CPU than the work, and
        work that small is over long before a heartbeat could be late."""
        if size <= inline_up_to:
            return fn(*args, **kwargs)
        return await self.run_blocking(fn, *args, **kwargs)


# A handler returns the job's result, or raises worker.errors.JobError.
Handler = Callable[[pb.LeasedJob, JobContext], Awaitable[jobs_pb2.JobResult]]
