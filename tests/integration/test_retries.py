"""Retry backoff, attempt budgets and lease expiry in SQL, with the clock under test control."""

from __future__ import annotations

import datetime as dt

import asyncpg

from crawlfleet.coordinator.api.validation import validate_job
from crawlfleet.coordinator.settings import CoordinatorSettings, RetryDefaults
from crawlfleet.coordinator.storage.queue import Queue
from crawlfleet.v1 import jobs_pb2
from tests.helpers import noop, seconds

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


async def add_job(queue: Queue, spec: jobs_pb2.JobSpec) -> int:
    settings = CoordinatorSettings(retry=RetryDefaults(max_attempts=3))
    (job,) = await queue.enqueue([validate_job(spec, "jobs[0]", settings)], now=T0)
    return job.id


async def test_retryable_failures_back_off_within_growing_bounds_then_die(queue: Queue, db: asyncpg.Pool) -> None:
    policy = jobs_pb2.RetryPolicy(
        initial_interval=seconds(10), backoff_coefficient=3, maximum_interval=seconds(60), maximum_attempts=4
    )
    job_id = await add_job(queue, noop(retry_policy=policy))
    now = T0
    delays = []
    for attempt in range(1, 5):
        (leased,) = await queue.lease(worker_id="w", max_jobs=1, kinds=[], lease_seconds=30, now=now)
        assert (leased.id, leased.attempt) == (job_id, attempt)
        outcome = await queue.fail(
            job_id=job_id,
            lease_token=leased.lease_token,
            error_type="boom",
            error_message=f"try {attempt}",
            retryable=True,
            retry_after_seconds=None,
            release=False,
            now=now,
        )
        if attempt < 4:
            assert outcome.state == "queued"
            delays.append((outcome.run_at - now).total_seconds())
            # Not leasable before its run_at.
            assert (
                await queue.lease(
                    worker_id="w",
                    max_jobs=1,
                    kinds=[],
                    lease_seconds=30,
                    now=outcome.run_at - dt.timedelta(milliseconds=1),
                )
                == []
            )
            now = outcome.run_at
        else:
            assert outcome.state == "dead"
    # Full jitter: each delay is uniform in [0, min(60, 10 * 3^(n-1))]: bounds 10, 30, 60.
    for delay, bound in zip(delays, [10, 30, 60], strict=True):
        assert 0 <= delay <= bound
    errors = await db.fetch(
        "SELECT attempt, error_message FROM job_attempts WHERE job_id = $1 ORDER BY attempt", job_id
    )
    assert [(r["attempt"], r["error_message"]) for r in errors] == [(n, f"try {n}") for n in range(1, 5)]
    assert await db.fetchval("SELECT last_error FROM jobs WHERE id = $1", job_id) == "boom: try 4"


async def test_jitter_spreads_delays(queue: Queue) -> None:
    policy = jobs_pb2.RetryPolicy(initial_interval=seconds(100), maximum_interval=seconds(100), maximum_attempts=2)
    delays = set()
    for _ in range(8):
        job_id = await add_job(queue, noop(retry_policy=policy))
        (leased,) = await queue.lease(worker_id="w", max_jobs=1, kinds=[], lease_seconds=30, now=T0)
        outcome = await queue.fail(
            job_id=job_id,
            lease_token=leased.lease_token,
            error_type="e",
            error_message="",
            retryable=True,
            retry_after_seconds=None,
            release=False,
            now=T0,
        )
        delays.add(round((outcome.run_at - T0).total_seconds(), 3))
    assert len(delays) > 1


async def test_expired_lease_counts_as_a_failed_attempt(queue: Queue, db: asyncpg.Pool) -> None:
    job_id = await add_job(queue, noop())
    for attempt in range(1, 4):
        now = T0 + dt.timedelta(minutes=attempt)
        (leased,) = await queue.lease(worker_id=f"w{attempt}", max_jobs=1, kinds=[], lease_seconds=30, now=now)
        assert leased.attempt == attempt
        assert await queue.reap_expired(batch=10, now=now + dt.timedelta(seconds=29)) == []
        state = "queued" if attempt < 3 else "dead"
        reaped = await queue.reap_expired(batch=10, now=now + dt.timedelta(seconds=30))
        assert [(job.id, job.state) for job in reaped] == [(job_id, state)]
    rows = await db.fetch("SELECT outcome, error_message FROM job_attempts WHERE job_id = $1", job_id)
    assert [(r["outcome"], r["error_message"]) for r in rows] == [("expired", "lease expired")] * 3


async def test_kinds_filter_leases_only_what_the_worker_handles(queue: Queue) -> None:
    noop_id = await add_job(queue, noop())
    scrape_id = await add_job(queue, jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url="http://example.com/")))
    got = await queue.lease(worker_id="w", max_jobs=5, kinds=["scrape"], lease_seconds=30, now=T0)
    assert [r.id for r in got] == [scrape_id]
    got = await queue.lease(worker_id="w", max_jobs=5, kinds=[], lease_seconds=30, now=T0)
    assert [r.id for r in got] == [noop_id]


async def test_database_rejects_a_second_leased_job_for_one_url(db: asyncpg.Pool, queue: Queue) -> None:
    spec = jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url="http://example.com/"))
    first = await add_job(queue, jobs_pb2.JobSpec(scrape=spec.scrape, idempotency_key="1"))
    second = await add_job(queue, jobs_pb2.JobSpec(scrape=spec.scrape, idempotency_key="2"))
    await queue.lease(worker_id="w", max_jobs=1, kinds=[], lease_seconds=30, now=T0)
    try:
        await db.execute(
            "UPDATE jobs SET state = 'leased', attempt = 1, lease_token = gen_random_uuid(), leased_by = 'x', "
            "leased_at = now(), lease_expires_at = now() WHERE id = $1",
            second,
        )
    except asyncpg.UniqueViolationError:
        pass
    else:
        raise AssertionError("two leased jobs for one URL were allowed")
    assert first != second
