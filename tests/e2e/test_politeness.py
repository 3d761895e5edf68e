"""Fleet-wide politeness against real websites: two coordinator processes on one database, worker
processes spread across them, and sites on their own loopback addresses (one host each) that log
every request. Every assertion about what the sites went through comes from the sites' own logs
(server-side monotonic clock), as a site owner would judge the fleet; the database is only read
to know when to look.

Times in the logs and in the database are both real time on one machine. A limit the database
enforces between a site-visible event and the next lease (a pause counted from a Fail, which the
worker sends after the response it reports on) therefore shows in the logs without any tolerance
but CLOCK_SLACK; a limit between two lease starts shows blurred by the worker-side latency of each
request (see DELAY_TOLERANCE).
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator

import asyncpg
import grpc
import pytest

from crawlfleet.v1 import admin_pb2, admin_pb2_grpc, crawls_pb2_grpc, job_queue_pb2_grpc, jobs_pb2
from crawlfleet.v1 import crawls_pb2 as cpb
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.e2e.processes import Fleet, Process
from tests.helpers import eventually, seconds
from tests.logged_site import LoggedSite, Visit, max_in_flight, overlapping

pytestmark = pytest.mark.e2e

# The database's clock (realtime) and the sites' (monotonic) may drift apart by NTP slewing
# (at most 500 ppm): a millisecond over the few seconds these tests span. Ten is plenty.
CLOCK_SLACK = 0.01
# Robots.txt is not what these tests are about; every process stays off the metrics ports.
QUIET = ("--no-obey-robots", "--metrics-listen", "off")
# Enough attempts that no job of these tests dies of its host's failures, retried soon (the
# host's pause, not the job's own backoff, is what holds retries back).
PATIENT = jobs_pb2.RetryPolicy(
    initial_interval=seconds(0.01), backoff_coefficient=2.0, maximum_interval=seconds(0.05), maximum_attempts=30
)


@pytest.fixture
def sites() -> Iterator[list[LoggedSite]]:
    """Sites started by the test (with `open_site`) on 127.0.0.2, 127.0.0.3, …; stopped at the end."""
    started: list[LoggedSite] = []
    yield started
    for site in started:
        site.stop()


def open_site(sites: list[LoggedSite], *, latency: float) -> LoggedSite:
    site = LoggedSite(f"127.0.0.{len(sites) + 2}", latency=latency).start()
    sites.append(site)
    return site


def paths(n: int, prefix: str = "/p") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def spec(url: str) -> jobs_pb2.JobSpec:
    scrape = jobs_pb2.ScrapeSpec(url=url, render=jobs_pb2.RENDER_MODE_HTTP, skip_images=True)
    return jobs_pb2.JobSpec(scrape=scrape, retry_policy=PATIENT)


async def enqueue(coordinator: Process, urls: list[str]) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{coordinator.port}") as channel:
        await job_queue_pb2_grpc.JobQueueStub(channel).Enqueue(pb.EnqueueRequest(jobs=[spec(u) for u in urls]))


async def coordinators(fleet: Fleet, dsn: str, *flags: str) -> tuple[Process, Process]:
    """Two coordinators on one database, with the politeness flags under test."""
    a, b = await asyncio.gather(
        fleet.coordinator("coordinator-a", dsn, *QUIET, *flags), fleet.coordinator("coordinator-b", dsn, *QUIET, *flags)
    )
    return a, b


def workers(fleet: Fleet, pair: tuple[Process, Process], count: int, slots: int) -> list[Process]:
    """Workers spread across the two coordinators."""
    return [
        fleet.worker(f"worker-{n}", pair[n % 2].port or 0, "--slots", str(slots), "--metrics-listen", "off")
        for n in range(count)
    ]


def served_all(site: LoggedSite, expected: list[str]) -> bool:
    return site.served() >= set(expected)


async def all_served(site_paths: list[tuple[LoggedSite, list[str]]], timeout: float, what: str) -> None:
    async def done() -> bool:
        return all(served_all(site, expected) for site, expected in site_paths)

    await eventually(done, timeout=timeout, what=what)


def describe(visits: list[Visit]) -> str:
    """A site's log for assertion messages, times relative to its first request."""
    if not visits:
        return "(no requests)"
    t0 = visits[0].start
    return "\n".join(f"  {v.path:6} {v.status} {v.start - t0:7.3f} → {v.end - t0:7.3f}" for v in visits)


# --- 1. Concurrency and delay per host, fleet-wide ------------------------------------------

HOST_CONCURRENCY = 2
HOST_DELAY = 0.2
# A page takes three delays: were concurrency not limited, a third request would start on a host
# while two are in flight (starts come a delay apart), so the limit of two is what keeps it out.
SLOW_PAGE = 3 * HOST_DELAY
# Lease starts on a host are at least a delay apart in database time (each claim's now()). A
# request reaches its site later than its lease started, by the worker-side latency: the claim's
# commit, the Lease answer over gRPC, the worker handing the job to a slot and the HTTP request
# itself. Two requests' arrivals are spaced by the delay plus the difference of their latencies:
# a few milliseconds once a worker is warm (its very first pages also pay for imports and pools,
# tens of milliseconds, hence the warm-up), and well under 100 ms even on a busy two-core machine
# (two coordinators, three workers, PostgreSQL and the sites). Checked over any run of requests,
# k lease starts span (k - 1) delays, so the tolerance applies once per run, not once per
# request: a fleet starting a host's requests faster than the delay fails however small the
# excess, given enough requests.
DELAY_TOLERANCE = 0.1
WORKERS, SLOTS = 3, 4


def delay_violations(visits: list[Visit], delay: float, tolerance: float) -> list[tuple[str, str, float]]:
    """Runs of requests (by arrival) that started closer together than their lease starts could."""
    starts = [v.start for v in visits]
    return [
        (visits[i].path, visits[j].path, round(starts[j] - starts[i], 3))
        for i in range(len(starts))
        for j in range(i + 1, len(starts))
        if starts[j] - starts[i] < (j - i) * delay - tolerance
    ]


async def warm_up(pair: tuple[Process, Process], db: asyncpg.Pool, sites: list[LoggedSite]) -> None:
    """Every worker fetches a page on each of its slots: one slow page on each of as many hosts
    as the fleet has slots, all at once, so no worker can take another's share."""

    async def all_leasing() -> bool:
        return bool(await db.fetchval("SELECT count(*) FROM workers") == WORKERS)

    # Workers start with imports and pools: on a loaded machine that takes a while.
    await eventually(all_leasing, timeout=60, what="every worker to lease")
    warm = [open_site(sites, latency=0.3) for _ in range(WORKERS * SLOTS)]
    await enqueue(pair[0], [site.url("/warm") for site in warm])
    await all_served([(site, ["/warm"]) for site in warm], timeout=60, what="the warm-up pages")


async def test_hosts_get_at_most_their_concurrency_and_starts_a_delay_apart(
    fleet: Fleet, db_dsn: str, db: asyncpg.Pool, sites: list[LoggedSite]
) -> None:
    flags = ("--host-concurrency", str(HOST_CONCURRENCY), "--host-delay-seconds", str(HOST_DELAY))
    pair = await coordinators(fleet, db_dsn, *flags)
    # Twelve slots for four hosts of two: enough to break every limit if the limits were not kept.
    workers(fleet, pair, count=WORKERS, slots=SLOTS)
    await warm_up(pair, db, sites)
    hosts = [open_site(sites, latency=SLOW_PAGE) for _ in range(4)]
    per_host = paths(8)
    await enqueue(pair[0], [site.url(p) for site in hosts for p in per_host])
    await all_served([(site, per_host) for site in hosts], timeout=60, what="every page to be served")

    for site in hosts:
        log = site.visits()
        assert len(log) == len(per_host), describe(log)
        assert max_in_flight(log) == HOST_CONCURRENCY, f"{site.host}:\n{describe(log)}"
        assert delay_violations(log, HOST_DELAY, DELAY_TOLERANCE) == [], f"{site.host}:\n{describe(log)}"
    # The limits are per host: the fleet fetched from several hosts at once, more requests than
    # one host's limit (a global limit, or none at all, would fail one assertion or another).
    assert max_in_flight([v for site in hosts for v in site.visits()]) > HOST_CONCURRENCY


# --- 2. A 429 with Retry-After pauses its host, and only its host ---------------------------

RETRY_AFTER = 2


async def test_429_pauses_only_its_host_until_retry_after(fleet: Fleet, db_dsn: str, sites: list[LoggedSite]) -> None:
    busy = open_site(sites, latency=0.05)
    others = [open_site(sites, latency=0.1) for _ in range(3)]
    answered = threading.Event()

    def once_429(path: str) -> tuple[int, dict[str, str]]:
        if answered.is_set():
            return 200, {}
        answered.set()
        return 429, {"Retry-After": str(RETRY_AFTER)}

    busy.answer = once_429
    busy_paths, other_paths = paths(5), paths(30)
    # One lease at a time per host, no delay: the request after the 429 cannot have been leased
    # before the worker reported the 429 (its lease held the host's only slot).
    pair = await coordinators(fleet, db_dsn, "--host-concurrency", "1", "--host-delay-seconds", "0")
    await enqueue(pair[0], [busy.url(p) for p in busy_paths] + [s.url(p) for s in others for p in other_paths])
    workers(fleet, pair, count=2, slots=4)
    await all_served([(busy, busy_paths)], timeout=60, what="the paused host's pages to be served after all")

    log = busy.visits()
    refused = [v for v in log if v.status == 429]
    assert len(refused) == 1, describe(log)
    window_start, window_end = refused[0].end, refused[0].end + RETRY_AFTER
    # The pause starts when the worker reports the 429, after the site sent it.
    after = [v for v in log if v.start > refused[0].start]
    assert after and all(v.start >= window_end - CLOCK_SLACK for v in after), describe(log)
    for site in others:
        during = [v for v in site.visits() if window_start <= v.start < window_end]
        assert len(during) >= 3, f"{site.host} was not fetched while {busy.host} was paused:\n{describe(site.visits())}"


# --- 3. Fairness: a big host does not hold back small ones ----------------------------------


async def test_small_hosts_finish_while_a_big_host_still_has_work(
    fleet: Fleet, db_dsn: str, db: asyncpg.Pool, sites: list[LoggedSite]
) -> None:
    big = open_site(sites, latency=0.05)
    small = [open_site(sites, latency=0.05) for _ in range(8)]
    big_paths, small_paths = paths(30), paths(3)
    # Two slots in the whole fleet, and the big host may fill both (no delay): only the order in
    # which claims serve hosts shares the slots out.
    pair = await coordinators(fleet, db_dsn, "--host-concurrency", "2", "--host-delay-seconds", "0")
    # The big host's jobs first: older, they would come first in a queue that is not fair.
    await enqueue(pair[0], [big.url(p) for p in big_paths])
    await enqueue(pair[0], [site.url(p) for site in small for p in small_paths])
    workers(fleet, pair, count=2, slots=1)
    await all_served([(site, small_paths) for site in small], timeout=60, what="every small host's pages")

    big_so_far = big.visits()
    last_small_end = max(v.end for site in small for v in site.visits())
    # The big host had its turns meanwhile, and was far from done.
    assert 0 < len([v for v in big_so_far if v.start < last_small_end]) < len(big_paths) // 2, describe(big_so_far)
    queued = await db.fetchval("SELECT count(*) FROM jobs WHERE host = $1 AND state = 'queued'", big.host)
    assert queued > 0


# --- 4. A killed worker's lease does not leak its host's slot -------------------------------


async def test_killed_worker_does_not_leak_a_host_slot(
    fleet: Fleet, db_dsn: str, db: asyncpg.Pool, sites: list[LoggedSite]
) -> None:
    held = open_site(sites, latency=0.05)
    other = open_site(sites, latency=0.05)
    arrived, release = threading.Event(), threading.Event()
    arrivals: list[str] = []

    def hang_first(path: str) -> tuple[int, dict[str, str]]:
        arrivals.append(path)
        if path == "/held" and not arrived.is_set():
            arrived.set()
            release.wait(30)  # the page hangs until the test lets it go
        return 200, {}

    held.answer = hang_first
    held_paths, other_paths = ["/held", *paths(4)], paths(6)
    pair = await coordinators(
        fleet, db_dsn, "--host-concurrency", "1", "--host-delay-seconds", "0", "--lease-seconds", "2"
    )
    try:
        await enqueue(pair[0], [held.url(p) for p in held_paths])
        doomed = fleet.worker("doomed", pair[0].port or 0, "--slots", "2", "--metrics-listen", "off")

        async def doomed_holds_it() -> bool:
            leased_by = await db.fetchval("SELECT leased_by FROM jobs WHERE target_url = $1", held.url("/held"))
            return arrived.is_set() and leased_by == "doomed"

        await eventually(doomed_holds_it, timeout=30, what="the doomed worker to be fetching /held")
        # A worker with free slots all along, busy with another host meanwhile.
        fleet.worker("survivor", pair[1].port or 0, "--slots", "4", "--metrics-listen", "off")
        await enqueue(pair[1], [other.url(p) for p in other_paths])
        await all_served([(other, other_paths)], timeout=30, what="the survivor to fetch the other host")
        assert arrivals == ["/held"], "a second request reached the concurrency-1 host"

        doomed.signal(signal.SIGKILL)
        assert await doomed.wait_exit(10) == -signal.SIGKILL
    finally:
        release.set()
    await all_served([(held, held_paths)], timeout=30, what="the held host's pages to be served after the kill")

    log = held.visits()
    assert [v.path for v in log if v.path == "/held"] == ["/held", "/held"], describe(log)
    assert overlapping(log[1:]) == [], describe(log)


# --- 5. The circuit breaker ------------------------------------------------------------------

BREAKER_FAILURES = 3
BACKOFF_INITIAL = 0.25
BACKOFF_MAX = 1.0


async def test_breaker_pauses_a_failing_host_probes_it_and_recovers(
    fleet: Fleet, db_dsn: str, sites: list[LoggedSite]
) -> None:
    site = open_site(sites, latency=0.1)
    site.answer = lambda path: (500, {})
    site_paths = paths(6)
    pair = await coordinators(
        fleet,
        db_dsn,
        *("--host-concurrency", str(HOST_CONCURRENCY), "--host-delay-seconds", "0"),
        *("--host-breaker-failures", str(BREAKER_FAILURES)),
        *("--host-backoff-initial-seconds", str(BACKOFF_INITIAL), "--host-backoff-max-seconds", str(BACKOFF_MAX)),
    )
    await enqueue(pair[0], [site.url(p) for p in site_paths])
    workers(fleet, pair, count=2, slots=4)

    async def probed_twice() -> bool:
        return len(site.visits()) >= BREAKER_FAILURES + 2

    await eventually(probed_twice, timeout=30, what="two probes after the breaker opened")
    site.latency = 0.3  # the site is back, slow enough that its concurrency shows
    site.answer = lambda path: (200, {})
    await all_served([(site, site_paths)], timeout=30, what="every page after the site recovered")

    log = site.visits()
    first_success = next(n for n, v in enumerate(log) if v.status == 200)
    assert first_success >= BREAKER_FAILURES + 2, describe(log)
    # After n failures in a row, n at least the breaker's count, the next request comes alone
    # (every earlier one has ended) and only after the pause: the first backoff, doubled for each
    # failure past the count, up to the longest. So at most the breaker's count of requests reach
    # the failing host before it pauses, and then one probe at a time.
    for n in range(BREAKER_FAILURES, first_success + 1):
        pause = min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** (n - BREAKER_FAILURES))
        assert log[n].start >= max(v.end for v in log[:n]) + pause - CLOCK_SLACK, f"request {n}:\n{describe(log)}"
    # Closed again: the host's full limits are back.
    assert max_in_flight(log[first_success:]) == HOST_CONCURRENCY, describe(log)


# --- 6. A crawl's own politeness ----------------------------------------------------------------

CRAWL_DELAY = 0.4
CRAWL_PAGES = paths(6)


async def test_a_crawls_politeness_holds_on_its_site_and_ends_with_it(
    fleet: Fleet, db_dsn: str, db: asyncpg.Pool, sites: list[LoggedSite]
) -> None:
    # Loose fleet defaults: without the crawl's limits its slow pages would overlap at once.
    pair = await coordinators(fleet, db_dsn, "--host-concurrency", "8", "--host-delay-seconds", "0")
    workers(fleet, pair, count=2, slots=4)
    site = LoggedSite("127.0.0.2", latency=SLOW_PAGE, links=lambda path: CRAWL_PAGES if path == "/" else ())
    sites.append(site.start())
    polite = cpb.CrawlPoliteness(max_concurrency=1, delay=seconds(CRAWL_DELAY))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{pair[1].port}") as channel:
        crawls = crawls_pb2_grpc.CrawlsStub(channel)
        spec = cpb.CrawlSpec(seeds=[site.url("/")], politeness=polite, page=jobs_pb2.ScrapeSpec(skip_images=True))
        crawl_id = (await crawls.StartCrawl(cpb.StartCrawlRequest(spec=spec))).crawl_id

        async def finished() -> bool:
            crawl = (await crawls.GetCrawl(cpb.GetCrawlRequest(crawl_id=crawl_id))).crawl
            return crawl.state == cpb.CRAWL_STATE_FINISHED

        await eventually(finished, timeout=60, what="the crawl to finish")
        host = (await admin_pb2_grpc.AdminStub(channel).GetHost(admin_pb2.GetHostRequest(host=site.host))).host

    log = site.visits()
    assert sorted(v.path for v in log) == sorted(["/", *CRAWL_PAGES]), describe(log)
    assert max_in_flight(log) == 1, describe(log)
    assert delay_violations(log, CRAWL_DELAY, DELAY_TOLERANCE) == [], describe(log)
    # Finished, the crawl's policy is gone: the host is back to the fleet defaults.
    assert (host.policy_pattern, list(host.policy_crawl_ids), host.max_concurrency) == ("", [], 8)
