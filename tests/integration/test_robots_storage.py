"""Hosts' robots.txt in SQL, with the clock under test control: one lease fetches it while the host
waits, reports store it for the fleet, an unreachable one pauses the host longer at each failure,
and a job the rules disallow ends skipped."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import pytest

from crawlfleet.coordinator.api.validation import validate_job
from crawlfleet.coordinator.errors import LeaseLost
from crawlfleet.coordinator.politeness import Politeness
from crawlfleet.coordinator.settings import CoordinatorSettings
from crawlfleet.coordinator.storage.hosts import HostAdmin
from crawlfleet.coordinator.storage.queue import Queue
from crawlfleet.coordinator.storage.rows import LeasedJob, RobotsReported
from tests.helpers import assert_counts_exact, scrape

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
HOST = "shop.example"
POLITE = Politeness(
    host_concurrency=4,
    host_delay_seconds=0.0,
    obey_robots=True,
    robots_ttl_seconds=3600.0,
    max_crawl_delay_seconds=30.0,
    backoff_initial_seconds=5.0,
    backoff_max_seconds=20.0,
)
RULES = b"User-agent: *\nDisallow: /private\n"


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@pytest.fixture
def polite(db: asyncpg.Pool) -> Queue:
    return Queue(db, POLITE)


async def add_jobs(queue: Queue, *paths: str, host: str = HOST) -> list[int]:
    settings = CoordinatorSettings()
    jobs = [validate_job(scrape(f"https://{host}{path}"), f"jobs[{i}]", settings) for i, path in enumerate(paths)]
    return [job.id for job in await queue.enqueue(jobs, now=T0)]


async def lease(queue: Queue, now: dt.datetime, max_jobs: int = 10) -> list[LeasedJob]:
    return await queue.lease(worker_id="w", max_jobs=max_jobs, kinds=[], lease_seconds=30, now=now)


async def report(
    queue: Queue,
    job: LeasedJob,
    now: dt.datetime,
    *,
    status: int = 200,
    body: bytes = RULES,
    error_type: str = "",
    crawl_delay: float | None = None,
    host: str = HOST,
) -> RobotsReported:
    return await queue.report_robots(
        job_id=job.id,
        lease_token=job.lease_token,
        host=host,
        status_code=status,
        body=body,
        error_type=error_type,
        error_message="it broke" if error_type else "",
        crawl_delay_seconds=crawl_delay,
        now=now,
    )


async def release(queue: Queue, job: LeasedJob, now: dt.datetime) -> str:
    outcome = await queue.fail(
        job_id=job.id,
        lease_token=job.lease_token,
        error_type="robots_unreachable",
        error_message="robots.txt unreachable",
        retryable=True,
        retry_after_seconds=None,
        release=True,
        now=now,
    )
    return outcome.state


async def host_row(db: asyncpg.Pool, host: str = HOST) -> asyncpg.Record:
    return await db.fetchrow("SELECT * FROM hosts WHERE host = $1", host)


async def test_one_lease_fetches_the_rules_while_the_host_waits_then_leases_carry_their_version(
    polite: Queue, db: asyncpg.Pool
) -> None:
    await add_jobs(polite, "/a", "/b", "/c")
    (fetching,) = await lease(polite, at(0))
    assert fetching.fetch_robots and fetching.robots_version is None
    assert await lease(polite, at(1)) == []  # the host waits for the report

    reported = await report(polite, fetching, at(1), crawl_delay=2.0)
    assert (reported.state, reported.version, reported.expires_at) == ("rules", at(1), at(3601))
    row = await host_row(db)
    assert (row["robots_body"], row["robots_status"], row["robots_delay_ms"]) == (RULES, 200, 2000)
    assert row["robots_fetching_until"] is None

    # The Crawl-delay counts from the report: the fetching lease fetches its page now.
    assert await lease(polite, at(2.9)) == []
    (second,) = await lease(polite, at(3))
    assert (second.fetch_robots, second.robots_version) == (False, at(1))
    assert await lease(polite, at(4)) == []
    (third,) = await lease(polite, at(5))
    assert third.robots_version == at(1)

    stored = await polite.robots(HOST)
    assert stored is not None and (stored.state, stored.body, stored.version) == ("rules", RULES, at(1))
    assert await polite.robots("elsewhere.example") is None


async def test_rules_are_fetched_again_once_they_expire(polite: Queue) -> None:
    await add_jobs(polite, "/a", "/b")
    (first,) = await lease(polite, at(0))
    await report(polite, first, at(0))
    (second,) = await lease(polite, at(3599))
    assert not second.fetch_robots
    await add_jobs(polite, "/c")
    (third,) = await lease(polite, at(3600))
    assert third.fetch_robots and third.robots_version is None


async def test_a_crawl_delay_is_capped(polite: Queue, db: asyncpg.Pool) -> None:
    await add_jobs(polite, "/a")
    (job,) = await lease(polite, at(0))
    await report(polite, job, at(0), crawl_delay=3600.0)
    assert (await host_row(db))["robots_delay_ms"] == 30_000


async def test_an_unavailable_robots_txt_allows_all_and_keeps_no_rules(polite: Queue, db: asyncpg.Pool) -> None:
    await add_jobs(polite, "/a", "/b")
    (job,) = await lease(polite, at(0))
    reported = await report(polite, job, at(0), status=404, body=b"not found")
    assert reported.state == "allow_all"
    (other,) = await lease(polite, at(0))
    assert (other.fetch_robots, other.robots_version) == (False, None)
    row = await host_row(db)
    assert (row["robots_state"], row["robots_body"], row["robots_status"]) == ("allow_all", None, 404)


async def test_an_unreachable_robots_txt_pauses_the_host_longer_each_time_and_charges_no_attempt(
    polite: Queue, db: asyncpg.Pool
) -> None:
    (job_id, other_id) = await add_jobs(polite, "/a", "/b")
    now = at(0)
    pauses = []
    for status, error_type in ((503, ""), (0, "timeout"), (429, ""), (500, "")):
        (fetching,) = await lease(polite, now)
        assert fetching.fetch_robots
        reported = await report(polite, fetching, now, status=status, body=b"", error_type=error_type)
        assert reported.state == "unreachable"
        row = await host_row(db)
        pause = (row["paused_until"] - now).total_seconds()
        pauses.append(pause)
        assert reported.expires_at == row["paused_until"]  # fetched again when the pause ends
        assert row["pause_reason"].startswith("robots_unreachable: robots.txt ")
        assert await release(polite, fetching, now) == "queued"
        # Complete disallow while unreachable: nothing of the host is leased until the pause ends.
        assert await lease(polite, now + dt.timedelta(seconds=pause - 0.001)) == []
        now += dt.timedelta(seconds=pause)
    assert pauses == [5.0, 10.0, 20.0, 20.0]  # doubling from the first pause, capped at the longest
    row = await host_row(db)
    assert (row["robots_failures"], row["pause_reason"]) == (4, "robots_unreachable: robots.txt HTTP 500")

    (fetching,) = await lease(polite, now)
    await report(polite, fetching, now)
    row = await host_row(db)
    # A fetch that worked ends the robots.txt's pause and its failures; the other job may go now.
    assert (row["robots_failures"], row["paused_until"], row["pause_reason"]) == (0, None, None)
    (other,) = await lease(polite, now)
    assert other.robots_version == now
    attempts = await db.fetch(
        "SELECT job_id, attempt, outcome FROM job_attempts ORDER BY started_at, job_id", timeout=5
    )
    assert [(a["job_id"], a["outcome"]) for a in attempts[:-2]] == [(fetching.id, "released")] * 4
    charged = await db.fetch("SELECT id, attempt FROM jobs ORDER BY id")
    assert [(r["id"], r["attempt"]) for r in charged] == [(job_id, 1), (other_id, 1)]


async def test_a_longer_pause_in_force_keeps_its_reason(polite: Queue, db: asyncpg.Pool) -> None:
    await add_jobs(polite, "/a")
    (job,) = await lease(polite, at(0))
    await db.execute("UPDATE hosts SET paused_until = 'infinity', pause_reason = 'operator: maintenance'")
    await report(polite, job, at(0), status=503, body=b"")
    row = await db.fetchrow(
        "SELECT paused_until = 'infinity' AS forever, pause_reason, robots_expires_at FROM hosts WHERE host = $1", HOST
    )
    assert (row["forever"], row["pause_reason"]) == (True, "operator: maintenance")
    assert row["robots_expires_at"] == at(5)  # its own pause's end: fetched again when the host resumes


async def test_a_report_needs_the_lease_of_a_job_of_that_host(polite: Queue) -> None:
    await add_jobs(polite, "/a")
    await add_jobs(polite, "/b", host="other.example")
    theirs, ours = sorted(await lease(polite, at(0)), key=lambda job: job.host or "")  # other.example first
    with pytest.raises(LeaseLost):
        await report(polite, theirs, at(0))  # a lease of other.example reporting for shop.example
    with pytest.raises(LeaseLost):
        await report(polite, ours._replace(lease_token=uuid.uuid4()), at(0))
    await release(polite, ours, at(0))
    with pytest.raises(LeaseLost):
        await report(polite, ours, at(0))  # the lease ended


async def test_a_disallowed_job_ends_skipped_not_dead(polite: Queue, db: asyncpg.Pool) -> None:
    (job_id,) = await add_jobs(polite, "/private/x")
    (job,) = await lease(polite, at(0))
    await report(polite, job, at(0))
    outcome = await polite.fail(
        job_id=job.id,
        lease_token=job.lease_token,
        error_type="robots_disallowed",
        error_message="robots.txt of shop.example disallows it",
        retryable=False,
        retry_after_seconds=None,
        release=False,
        now=at(0),
    )
    assert outcome.state == "skipped"
    row = await db.fetchrow("SELECT state::text, finished_at, last_error FROM jobs WHERE id = $1", job_id)
    assert (row["state"], row["finished_at"]) == ("skipped", at(0))
    assert row["last_error"] == "robots_disallowed: robots.txt of shop.example disallows it"
    attempt = await db.fetchrow("SELECT outcome, error_type FROM job_attempts WHERE job_id = $1", job_id)
    assert (attempt["outcome"], attempt["error_type"]) == ("skipped", "robots_disallowed")
    assert (await host_row(db))["error_streak"] == 0  # not the host's fault
    await assert_counts_exact(db)


async def test_robots_disallowed_said_retryable_or_a_release_keeps_its_usual_meaning(polite: Queue) -> None:
    await add_jobs(polite, "/x", "/y")
    (job,) = await lease(polite, at(0))
    await report(polite, job, at(0), status=404, body=b"")
    (other,) = await lease(polite, at(0))
    for leased, retryable, release in ((job, True, False), (other, False, True)):
        outcome = await polite.fail(
            job_id=leased.id,
            lease_token=leased.lease_token,
            error_type="robots_disallowed",
            error_message="",
            retryable=retryable,
            retry_after_seconds=None,
            release=release,
            now=at(0),
        )
        assert outcome.state == "queued"


async def test_resuming_a_host_whose_robots_txt_was_unreachable_fetches_it_first(
    polite: Queue, db: asyncpg.Pool
) -> None:
    await add_jobs(polite, "/a", "/b")
    (fetching,) = await lease(polite, at(0))
    await report(polite, fetching, at(0), status=503, body=b"")
    await release(polite, fetching, at(0))
    await HostAdmin(db).resume(HOST, queued_cap=10, now=at(1))  # an operator: try again now
    # Not a lease that skips the check: the next one fetches robots.txt again, alone.
    (again,) = await lease(polite, at(1))
    assert again.fetch_robots
    row = await host_row(db)
    assert (row["paused_until"], row["robots_failures"]) == (None, 0)
