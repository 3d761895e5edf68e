"""The ``noop`` kind: takes time, then succeeds or fails as its spec says (tests, benchmarks)."""

from __future__ import annotations

import asyncio

from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.context import JobContext
from crawlfleet.worker.errors import JobError


async def run_noop(job: pb.LeasedJob, ctx: JobContext) -> jobs_pb2.JobResult:
    """Sleeps ``spec.noop.duration``, then fails with ``fail_message`` if set, else succeeds."""
    spec = job.spec.noop
    if spec.HasField("duration"):  # most have none: skip the conversion, and never sleep(0)
        seconds = spec.duration.ToNanoseconds() / 1e9
        if seconds > 0:
            await asyncio.sleep(seconds)  # the sleep is this job's work
    if spec.fail_message:
        raise JobError(spec.fail_message, error_type="noop_failure", retryable=spec.fail_retryable)
    return jobs_pb2.JobResult(noop=jobs_pb2.NoopResult())
