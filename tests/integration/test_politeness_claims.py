"""Per-host politeness at the queue: what claims lease from each host (concurrency, delay,
pauses, the circuit breaker, fairness, priority) with the clock under test control, and two
coordinators' claims racing on one host. tests/e2e/test_politeness.py shows the same limits from
the websites' side."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest

from crawlfleet.coordinator.api.validation import validate_job
from crawlfleet.coordinator.politeness import Politeness
from crawlfleet.coordinator.settings import CoordinatorSettings, RetryDefaults
from crawlfleet.coordinator.storage.queue import Queue
from crawlfleet.coordinator.storage.rows import Completion, LeasedJob
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from tests.conftest import StartCoordinator
from tests.helpers import lease_request, noop_result, seconds

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
# Time between steps of a test: past the retry backoff of a failed job (QUICK_RETRY).
STEP = dt.timedelta(milliseconds=10)
LEASE_SECONDS = 30.0
SETTINGS = CoordinatorSettings(retry=RetryDefaults(max_attempts=20))
# Retries due almost at once: what holds a failing host back is its pause, not its jobs' backoff.
QUICK_RETRY = jobs_pb2.RetryPolicy(initial_interval=seconds(0.001), maximum_interval=seconds(0.001))


def at(offset: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=offset)


def politeness(**overrides: object) -> Politeness:
    base: dict[str, object] = {
        "host_concurrency": 2,
        "host_delay_seconds": 0.0,
        "obey_robots": False,
        "breaker_failures": 3,
        "backoff_initial_seconds": 5.0,
        "backoff_max_seconds": 20.0,
    }
    return Politeness(**{**base, **overrides})  # type: ignore[arg-type]


def polite_queue(db: asyncpg.Pool, **overrides: object) -> Queue:
    return Queue(db, politeness(**overrides))


def host_job(url: str, priority: int = 0, run_at: dt.datetime | None = None) -> jobs_pb2.JobSpec:
    """A job that stands for a URL (and so belongs to its host) without fetching it."""
    spec = jobs_pb2.JobSpec(noop=jobs_pb2.NoopSpec(url=url), priority=priority, retry_policy=QUICK_RETRY)
    if run_at is not None:
        spec.run_at.FromDatetime(run_at)
    return spec


async def add(
    queue: Queue,
    host: str,
    count: int,
    *,
    now: dt.datetime | None = T0,
    priority: int = 0,
    run_at: dt.datetime | None = None,
) -> list[int]:
    """`count` jobs on `host`, due at `run_at` (default: when enqueued); their ids in lease order."""
    tag = f"{priority}-{run_at.timestamp() if run_at else 0}"
    specs = [host_job(f"http://{host}/{tag}/{n}", priority, run_at) for n in range(count)]
    jobs = await queue.enqueue([validate_job(s, f"jobs[{i}]", SETTINGS) for i, s in enumerate(specs)], now=now)
    return [job.id for job in jobs]


async def lease(queue: Queue, now: dt.datetime | None, max_jobs: int = 10, worker: str = "w") -> list[LeasedJob]:
    return await queue.lease(worker_id=worker, max_jobs=max_jobs, kinds=[], lease_seconds=LEASE_SECONDS, now=now)


def per_host(jobs: Sequence[LeasedJob]) -> Counter[str | None]:
    return Counter(job.host for job in jobs)


async def complete(queue: Queue, jobs: Sequence[LeasedJob], now: dt.datetime | None) -> None:
    result = noop_result().SerializeToString()
    await queue.complete([Completion(job.id, job.lease_token, result) for job in jobs], now=now)


async def fail(
    queue: Queue, job: LeasedJob, now: dt.datetime, error_type: str = "http_5xx", retry_after: float | None = None
) -> None:
    """A retryable failure as a worker reports it (a 5xx by default: a host failure)."""
    await queue.fail(
        job_id=job.id,
        lease_token=job.lease_token,
        error_type=error_type,
        error_message="from the test",
        retryable=True,
        retry_after_seconds=retry_after,
        release=False,
        now=now,
    )


async def host_row(db: asyncpg.Pool, host: str) -> asyncpg.Record:
    return await db.fetchrow("SELECT * FROM hosts WHERE host = $1", host)


# --- Limits ---------------------------------------------------------------------------------


async def test_a_host_gets_at_most_its_concurrency_whoever_asks(db: asyncpg.Pool) -> None:
    queue = polite_queue(db, host_concurrency=2)
    await add(queue, "a.example", 5)
    first = await lease(queue, T0)
    assert per_host(first) == {"a.example": 2}
    assert await lease(queue, T0, worker="w2") == []
    await complete(queue, first[:1], T0)
    assert per_host(await lease(queue, T0, worker="w2")) == {"a.example": 1}
    assert await lease(queue, T0) == []


async def test_a_claim_locks_no_more_of_a_hosts_jobs_than_it_leases(db: asyncpg.Pool) -> None:
    # A host with room for many leases: a claim for 3 must not lock its whole backlog to pick them
    # (each row lock is a WAL record and a dirtied page). A row locked by a committed claim and
    # left queued keeps that claim's transaction in its xmax.
    queue = polite_queue(db, host_concurrency=1000)
    await add(queue, "roomy.example", 200)
    leased = await lease(queue, T0, max_jobs=3)
    assert len(leased) == 3
    locked_left_queued = await db.fetchval(
        "SELECT count(*) FROM jobs WHERE host = 'roomy.example' AND state = 'queued' AND xmax::text <> '0'"
    )
    assert locked_left_queued == 0
    # The rest is there for the next claims, in lease order.
    assert len(await lease(queue, T0 + STEP, max_jobs=100)) == 100


async def test_lease_starts_on_a_host_are_a_delay_apart(db: asyncpg.Pool) -> None:
    queue = polite_queue(db, host_concurrency=5, host_delay_seconds=1.0)
    await add(queue, "a.example", 5)
    await add(queue, "b.example", 5)
    # One lease per host per delay, even with room for more; the hosts do not wait for each other.
    assert per_host(await lease(queue, T0)) == {"a.example": 1, "b.example": 1}
    assert await lease(queue, at(0.999)) == []
    assert await queue.next_host_ready() == at(1)  # an idle Lease sleeps until then
    assert per_host(await lease(queue, at(1))) == {"a.example": 1, "b.example": 1}


# --- Pauses and the circuit breaker ---------------------------------------------------------


async def test_429_pauses_only_its_host_until_retry_after(db: asyncpg.Pool) -> None:
    queue = polite_queue(db, host_concurrency=1)
    await add(queue, "busy.example", 3)
    await add(queue, "calm.example", 3)
    leased = await lease(queue, T0)
    busy = next(job for job in leased if job.host == "busy.example")
    await fail(queue, busy, T0, "http_429", retry_after=30)
    row = await host_row(db, "busy.example")
    assert row["paused_until"] == at(30) and row["pause_reason"].startswith("retry_after")
    await complete(queue, [job for job in leased if job.host == "calm.example"], T0)

    assert per_host(await lease(queue, at(1))) == {"calm.example": 1}
    assert await lease(queue, at(29.999)) == []
    assert await queue.next_host_ready() == at(30)
    assert per_host(await lease(queue, at(30))) == {"busy.example": 1}


async def test_429_without_retry_after_pauses_for_the_first_backoff(db: asyncpg.Pool) -> None:
    queue = polite_queue(db, backoff_initial_seconds=5.0)
    await add(queue, "busy.example", 3)
    job, _ = await lease(queue, T0)
    await fail(queue, job, T0, "http_429")
    assert (await host_row(db, "busy.example"))["paused_until"] == at(5)


async def test_breaker_opens_doubles_and_closes(db: asyncpg.Pool) -> None:
    queue = polite_queue(db, host_concurrency=2, breaker_failures=3, backoff_initial_seconds=5, backoff_max_seconds=20)
    await add(queue, "down.example", 10)
    now = T0
    for _ in range(3):
        now += STEP
        (job,) = await lease(queue, now, max_jobs=1)
        await fail(queue, job, now)
    row = await host_row(db, "down.example")
    assert (row["error_streak"], row["paused_until"]) == (3, now + dt.timedelta(seconds=5))
    assert row["pause_reason"].startswith("circuit_breaker")
    # Half-open: one probe at a time once the pause ends; each failed probe doubles the pause,
    # up to the longest.
    for pause in (5, 10, 20, 20):
        assert await lease(queue, now + dt.timedelta(seconds=pause - 0.001)) == []
        now += dt.timedelta(seconds=pause)
        (probe,) = await lease(queue, now)
        assert await lease(queue, now, worker="w2") == []
        await fail(queue, probe, now)
    assert (await host_row(db, "down.example"))["error_streak"] == 7
    # A successful probe closes the breaker: the host's full concurrency is back.
    now += dt.timedelta(seconds=20)
    (probe,) = await lease(queue, now)
    await complete(queue, [probe], now)
    row = await host_row(db, "down.example")
    assert (row["error_streak"], row["paused_until"], row["pause_reason"]) == (0, None, None)
    assert per_host(await lease(queue, now + STEP)) == {"down.example": 2}


async def test_breaker_opens_before_more_requests_than_its_count_reach_the_host(db: asyncpg.Pool) -> None:
    queue = polite_queue(db, host_concurrency=2, breaker_failures=3)
    await add(queue, "down.example", 10)
    first, second = await lease(queue, T0)
    await fail(queue, first, T0)
    # After a host failure, one lease at a time until a success: leases granted while the
    # failures add up cannot outnumber the breaker's count.
    assert await lease(queue, T0 + STEP) == []
    await fail(queue, second, T0 + STEP)
    (third,) = await lease(queue, T0 + 2 * STEP)
    await fail(queue, third, T0 + 2 * STEP)
    assert (await host_row(db, "down.example"))["paused_until"] == T0 + 2 * STEP + dt.timedelta(seconds=5)
    assert await db.fetchval("SELECT count(*) FROM job_attempts") == 3


async def test_page_failures_do_not_count_against_the_host(db: asyncpg.Pool) -> None:
    queue = polite_queue(db, host_concurrency=2, breaker_failures=1)
    await add(queue, "a.example", 4)
    job, _ = await lease(queue, T0)
    await fail(queue, job, T0, "http_4xx")
    row = await host_row(db, "a.example")
    assert (row["error_streak"], row["paused_until"]) == (0, None)
    assert per_host(await lease(queue, T0 + STEP)) == {"a.example": 1}  # the other slot is still taken


# --- When a host is looked at again ---------------------------------------------------------


@pytest.mark.parametrize("ending", ["complete", "fail", "expiry"])
async def test_a_saturated_host_is_ready_as_soon_as_a_lease_ends(db: asyncpg.Pool, ending: str) -> None:
    queue = polite_queue(db, host_concurrency=1)
    await add(queue, "a.example", 3)
    (job,) = await lease(queue, T0)
    assert await lease(queue, at(0.01)) == []
    assert (await host_row(db, "a.example"))["saturated"]
    # Its lease ends before the saturated host's periodic re-check (a second) would find it.
    end = at(LEASE_SECONDS) if ending == "expiry" else at(0.1)
    if ending == "complete":
        await complete(queue, [job], end)
    elif ending == "fail":
        # Retried only in a minute: the host's other jobs need not wait for that.
        await fail(queue, job, end, "noop_failure", retry_after=60)
    else:
        assert [r.id for r in await queue.reap_expired(batch=10, now=end)] == [job.id]
    ready_at = await queue.next_host_ready()
    assert ready_at is not None and ready_at <= end
    assert per_host(await lease(queue, end)) == {"a.example": 1}


async def test_a_host_whose_jobs_are_not_due_waits_for_the_first(db: asyncpg.Pool) -> None:
    queue = polite_queue(db, host_concurrency=1)
    await add(queue, "a.example", 1)
    await add(queue, "a.example", 1, run_at=at(100))
    (job,) = await lease(queue, T0)
    await complete(queue, [job], at(0.5))  # the host was saturated: it is looked at again
    assert await lease(queue, at(1)) == []
    # Not ready before its next job is due (an idle Lease would claim again and again meanwhile).
    assert await queue.next_host_ready() == at(100)
    assert per_host(await lease(queue, at(100))) == {"a.example": 1}


async def test_an_idle_lease_does_not_spin_on_a_host_with_nothing_due(start_coordinator: StartCoordinator) -> None:
    coord = await start_coordinator(politeness=politeness(host_concurrency=1), recheck_seconds=1.0)
    far = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    specs = [host_job("http://a.example/now"), host_job("http://a.example/later", run_at=far)]
    await coord.queue.Enqueue(pb.EnqueueRequest(jobs=specs))
    (job,) = (await coord.queue.Lease(lease_request())).jobs
    done = pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=noop_result())
    await coord.queue.Complete(pb.CompleteRequest(jobs=[done]))
    registry = coord.coordinator.metrics.registry

    def claims() -> float:
        return registry.get_sample_value("crawlfleet_lease_claims_total") or 0.0

    before = claims()
    assert list((await coord.queue.Lease(lease_request(wait=1.0))).jobs) == []
    # A claim, then one at most per re-check (or per wake-up), not one every few milliseconds.
    assert claims() - before <= 4


@pytest.mark.xfail(
    strict=True,
    reason="a host's readiness follows its most urgent queued job's run_at, even when a less urgent job is due",
)
async def test_a_due_job_is_not_held_back_by_a_more_urgent_later_one(db: asyncpg.Pool) -> None:
    queue = polite_queue(db, host_concurrency=5, host_delay_seconds=1.0)
    await add(queue, "a.example", 2)
    await add(queue, "a.example", 1, priority=50, run_at=at(3600))  # e.g. an urgent job's retry
    assert per_host(await lease(queue, T0)) == {"a.example": 1}
    assert per_host(await lease(queue, at(1))) == {"a.example": 1}


# --- Fairness and priority ------------------------------------------------------------------


async def test_one_claim_serves_hosts_round_robin(db: asyncpg.Pool) -> None:
    queue = polite_queue(db, host_concurrency=10)
    for n, host in enumerate(["a.example", "b.example", "c.example"]):
        await add(queue, host, 10, now=at(n * 0.001))
    # Each host's first job, then each host's second, whatever the hosts' backlog.
    assert per_host(await lease(queue, at(1), max_jobs=6)) == {"a.example": 2, "b.example": 2, "c.example": 2}
    assert sorted(per_host(await lease(queue, at(1), max_jobs=4)).values()) == [1, 1, 2]


async def test_a_served_host_goes_behind_the_waiting_ones(db: asyncpg.Pool) -> None:
    queue = polite_queue(db, host_concurrency=10)
    hosts = ["a.example", "b.example", "c.example"]
    await add(queue, "a.example", 50, now=T0)  # the big backlog, enqueued first
    for n, host in enumerate(hosts[1:], start=1):
        await add(queue, host, 2, now=at(n * 0.001))
    served = []
    for n in range(6):
        (job,) = await lease(queue, at(1 + n * 0.01), max_jobs=1)
        served.append(job.host)
    assert served == hosts * 2


async def test_priority_orders_hosts_and_jobs_within_a_host(db: asyncpg.Pool) -> None:
    queue = polite_queue(db, host_concurrency=1)
    await add(queue, "old.example", 3, now=T0)
    urgent = await add(queue, "new.example", 1, now=at(1), priority=50)
    assert [job.id for job in await lease(queue, at(2), max_jobs=1)] == urgent
    # Within a host: its most urgent job first, however late it came.
    await add(queue, "mixed.example", 2, now=at(2))
    first = await add(queue, "mixed.example", 1, now=at(3), priority=20)
    leased = await lease(queue, at(4), max_jobs=5)
    assert [job.id for job in leased if job.host == "mixed.example"] == first


# --- Two coordinators -----------------------------------------------------------------------


@pytest.fixture
async def second_pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(db_dsn, min_size=4, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()


async def test_two_coordinators_racing_never_exceed_a_hosts_concurrency(
    db: asyncpg.Pool, second_pool: asyncpg.Pool
) -> None:
    concurrency = 3
    coordinators = [Queue(pool, politeness(host_concurrency=concurrency)) for pool in (db, second_pool)]
    hosts = [f"h{n}.example" for n in range(4)]
    for host in hosts:
        await add(coordinators[0], host, 30, now=None)

    async def in_flight() -> dict[str, int]:
        rows = await db.fetch("SELECT host, count(*) AS n FROM jobs WHERE state = 'leased' GROUP BY host")
        return {row["host"]: row["n"] for row in rows}

    for _ in range(4):
        # Bursts of claims at once from both coordinators' pools, each with room for every
        # host's jobs, until the hosts are full (a claim skips the hosts another one holds).
        leased: list[LeasedJob] = []
        while True:
            claims = [lease(coordinators[n % 2], None, max_jobs=8, worker=f"w{n}") for n in range(24)]
            burst = [job for batch in await asyncio.gather(*claims) for job in batch]
            assert all(n <= concurrency for n in (await in_flight()).values())
            if not burst:
                break
            leased += burst
        assert await in_flight() == dict.fromkeys(hosts, concurrency)
        await asyncio.gather(*(complete(coordinators[n % 2], [job], None) for n, job in enumerate(leased)))
