"""Scrape jobs run through the handler as a worker runs them, without a coordinator."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from crawlfleet.common.logs import job_log
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.context import JobContext
from crawlfleet.worker.handlers.scrape import run_scrape
from crawlfleet.worker.pipeline.resources import PipelineResources
from crawlfleet.worker.settings import WorkerSettings


async def scrape_as_worker(
    settings: WorkerSettings, resources: PipelineResources, executor: ThreadPoolExecutor, spec: jobs_pb2.ScrapeSpec
) -> jobs_pb2.ScrapeResult:
    """What `run_scrape` returns for one job of spec (it raises what the worker would report)."""
    job = pb.LeasedJob(id=1, kind="scrape", attempt=1, spec=jobs_pb2.JobSpec(scrape=spec))
    log = job_log(logging.getLogger("crawlfleet.test"), job)
    ctx = JobContext(settings=settings, resources=resources, log=log, executor=executor)
    return (await run_scrape(job, ctx)).scrape


@contextlib.asynccontextmanager
async def pipeline(settings: WorkerSettings, slots: int = 2) -> AsyncIterator[PipelineResources]:
    """The worker's pipeline resources (fetcher, browser, image pool), closed at the end of the block."""
    shared = PipelineResources(settings.scrape, slots=slots)
    try:
        yield shared
    finally:
        await shared.aclose()
