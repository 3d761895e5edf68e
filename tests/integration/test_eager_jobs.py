"""Eager noop jobs against a real coordinator and database: each completes once, under its lease
token, with its attempt kept; jobs that must wait or fail still run through their handler."""

from __future__ import annotations

import asyncio

import asyncpg

from crawlfleet.coordinator.storage.completion import PLAIN_NOOP_RESULT
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.runner import Worker
from crawlfleet.worker.settings import WorkerSettings
from tests.conftest import StartCoordinator
from tests.helpers import eventually, noop

PLAIN_JOBS = 300


async def finished(db: asyncpg.Pool, total: int) -> bool:
    return int(await db.fetchval("SELECT count(*) FROM jobs WHERE state IN ('succeeded', 'dead')")) == total


async def test_plain_noops_complete_once_each_and_the_others_run_as_before(
    start_coordinator: StartCoordinator, db: asyncpg.Pool
) -> None:
    coord = await start_coordinator()
    failing = jobs_pb2.JobSpec(noop=jobs_pb2.NoopSpec(fail_message="asked to", fail_retryable=False))
    sleeping = noop(duration=0.01)
    await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[*(noop() for _ in range(PLAIN_JOBS)), failing, sleeping]))
    settings = WorkerSettings(coordinator=coord.address, worker_id="eager", slots=4, lease_wait=1.0)
    async with Worker(settings) as worker:
        run = asyncio.create_task(worker.run())
        await eventually(lambda: finished(db, PLAIN_JOBS + 2), what="every job to finish")
        await worker.shutdown()
        await run
    assert worker.held_leases == 0
    states = dict(await db.fetch("SELECT state, count(*) FROM jobs GROUP BY state"))
    assert states == {"succeeded": PLAIN_JOBS + 1, "dead": 1}
    # One attempt per job, closed with the outcome its job ended in, under the token it was leased with.
    attempts = await db.fetch(
        """SELECT j.state, a.outcome, a.lease_token = j.lease_token AS same_token, j.result
           FROM jobs j JOIN job_attempts a ON a.job_id = j.id"""
    )
    assert len(attempts) == PLAIN_JOBS + 2
    assert all(row["same_token"] for row in attempts)
    assert sorted((row["state"], row["outcome"]) for row in attempts) == sorted(
        [("succeeded", "succeeded")] * (PLAIN_JOBS + 1) + [("dead", "failed")]
    )
    results = {bytes(row["result"]) for row in attempts if row["state"] == "succeeded"}
    assert results == {PLAIN_NOOP_RESULT}
    assert jobs_pb2.JobResult.FromString(PLAIN_NOOP_RESULT).HasField("noop")
