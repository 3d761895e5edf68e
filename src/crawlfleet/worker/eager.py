"""Eager kinds: jobs whose work needs no waiting run inline in the lease loop's step.

For a no-op job a task of its own (its scheduling, slot bookkeeping, context and report) costs far
more than the work. An eager job's result is written straight into its ``CompletedJob`` and
handed to the same batcher as every other success: it is reported once, under its lease token,
and its lease is heartbeated until the Complete settles, exactly as for a job run as a task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.context import Handler
from crawlfleet.worker.handlers.noop import run_noop

# Writes the job's result into the given message and returns True, or returns False (untouched)
# when the job must wait or fail: then it runs as a task through its handler.
EagerRun = Callable[[pb.LeasedJob, jobs_pb2.JobResult], bool]


def finish_noop(job: pb.LeasedJob, result: jobs_pb2.JobResult) -> bool:
    """The result of a noop job that neither sleeps nor fails (what run_noop would return)."""
    spec = job.spec.noop
    if spec.fail_message or (spec.HasField("duration") and spec.duration.ToNanoseconds() > 0):
        return False
    result.noop.SetInParent()
    return True


# Each eager kind with the standard handler it stands in for.
EAGER_KINDS: Mapping[str, tuple[Handler, EagerRun]] = {"noop": (run_noop, finish_noop)}


def eager_runs(handlers: Mapping[str, Handler]) -> dict[str, EagerRun]:
    """The eager runs of the kinds these handlers serve with their standard handler: a kind given
    a handler of its own (a test's, say) keeps running it as a task."""
    return {kind: run for kind, (standard, run) in EAGER_KINDS.items() if handlers.get(kind) is standard}
