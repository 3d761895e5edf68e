"""robots.txt obeyed by a fleet: an in-process coordinator that obeys it, real workers, and loopback
sites serving robots.txt variants. What the sites saw (their own request logs) is the evidence:
which paths were requested, when, and with which User-Agent."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import pytest

from crawlfleet.common.hosts import host_of
from crawlfleet.common.urls import normalize_url
from crawlfleet.coordinator.politeness import Politeness
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.pipeline.settings import DEFAULT_USER_AGENT, ScrapeSettings
from crawlfleet.worker.runner import Worker
from crawlfleet.worker.settings import WorkerSettings
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import eventually, seconds
from tests.site import LocalSite, Response, blob, html, page, redirect

pytestmark = pytest.mark.timeout(120)

# Obeys robots.txt, with no delay of its own (so a Crawl-delay is what spaces requests) and short
# pauses (so an unreachable robots.txt is fetched again within the test).
POLITE = Politeness(
    host_concurrency=4,
    host_delay_seconds=0.0,
    obey_robots=True,
    backoff_initial_seconds=0.2,
    backoff_max_seconds=0.5,
)
FINISHED = ("succeeded", "dead", "skipped", "cancelled")


def robots(text: str) -> Callable[[], Response]:
    return blob(text.encode(), "text/plain")


def robots_site(text: str | None, *, pages: int = 0, private: int = 0) -> LocalSite:
    """A site with `pages` pages under /page/ and `private` under /private/, and the robots.txt
    `text` (None: none, a 404)."""
    site = LocalSite()
    for i in range(pages):
        site.routes[f"/page/{i}"] = page(html(f"Page {i}", f"<p>page {i}</p>"))
    for i in range(private):
        site.routes[f"/private/{i}"] = page(html(f"Private {i}", "<p>not for crawlers</p>"))
    if text is not None:
        site.routes["/robots.txt"] = robots(text)
    return site.start()


@contextlib.contextmanager
def serving(*sites: LocalSite) -> Iterator[tuple[LocalSite, ...]]:
    try:
        yield sites
    finally:
        for site in sites:
            site.stop()


@contextlib.asynccontextmanager
async def workers(address: str, count: int = 2, *, slots: int = 4) -> AsyncIterator[list[Worker]]:
    """`count` workers of the scrape kind, fetching loopback sites."""
    async with contextlib.AsyncExitStack() as stack:
        running = []
        for n in range(count):
            settings = WorkerSettings(
                coordinator=address,
                worker_id=f"robots-{n}",
                slots=slots,
                lease_wait=1.0,
                shutdown_grace=0.0,
                kinds=("scrape", "sitemap"),
                scrape=ScrapeSettings(allow_loopback=True, http_timeout=5.0),
            )
            worker = await stack.enter_async_context(Worker(settings))
            task = asyncio.create_task(worker.run())
            stack.push_async_callback(asyncio.wait_for, task, 30)
            stack.push_async_callback(worker.shutdown)
            running.append(worker)
        yield running


def spec(url: str, render: jobs_pb2.RenderMode.ValueType = jobs_pb2.RENDER_MODE_HTTP) -> jobs_pb2.JobSpec:
    policy = jobs_pb2.RetryPolicy(maximum_attempts=2, initial_interval=seconds(0.05), maximum_interval=seconds(0.05))
    return jobs_pb2.JobSpec(
        scrape=jobs_pb2.ScrapeSpec(url=url, render=render, skip_images=True, timeout=seconds(5)), retry_policy=policy
    )


async def enqueue(
    coord: RunningCoordinator, urls: list[str], render: jobs_pb2.RenderMode.ValueType = jobs_pb2.RENDER_MODE_HTTP
) -> dict[str, int]:
    response = await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[spec(url, render) for url in urls]))
    return {url: job.id for url, job in zip(urls, response.jobs, strict=True)}


async def states(db: asyncpg.Pool, ids: dict[str, int]) -> dict[str, str]:
    rows = await db.fetch("SELECT id, state::text FROM jobs WHERE id = ANY($1)", list(ids.values()))
    by_id = {r["id"]: r["state"] for r in rows}
    return {url: by_id[job_id] for url, job_id in ids.items()}


async def finished(db: asyncpg.Pool, ids: dict[str, int], timeout: float = 60.0) -> dict[str, str]:
    async def done() -> dict[str, str]:
        found = await states(db, ids)
        return found if all(state in FINISHED for state in found.values()) else {}

    return await eventually(done, timeout=timeout, interval=0.05, what="every job to finish")


def host(site: LocalSite) -> str:
    return host_of(normalize_url(site.base + "/"))


async def test_rules_are_fetched_once_per_host_and_a_disallowed_url_is_never_requested(
    start_coordinator: StartCoordinator, db: asyncpg.Pool
) -> None:
    coord = await start_coordinator(politeness=POLITE)
    text = "User-agent: *\nDisallow: /private/\n"
    with serving(robots_site(text, pages=12, private=4), robots_site(text, pages=12, private=4)) as sites:
        paths = [f"/page/{i}" for i in range(12)] + [f"/private/{i}" for i in range(4)]
        urls = [site.url(path) for site in sites for path in paths]
        async with workers(coord.address, 2):
            ids = await enqueue(coord, urls)
            ended = await finished(db, ids)
        for site in sites:
            log = site.requests
            assert site.hits["/robots.txt"] == 1, log  # once per host, for both workers and every job
            assert log[0].path == "/robots.txt"  # before any page of the host
            assert not [r.path for r in log if r.path.startswith("/private/")]
            assert {r.user_agent for r in log} == {DEFAULT_USER_AGENT}  # robots.txt fetched as pages are
            assert sorted(r.path for r in log[1:]) == sorted(f"/page/{i}" for i in range(12))
    assert {url: state for url, state in ended.items() if "/private/" in url} == {
        url: "skipped" for url in urls if "/private/" in url
    }
    assert {state for url, state in ended.items() if "/page/" in url} == {"succeeded"}
    skipped = await db.fetch(
        "SELECT j.last_error, a.outcome, a.error_type FROM jobs AS j JOIN job_attempts AS a ON a.job_id = j.id "
        "WHERE j.state = 'skipped'"
    )
    assert len(skipped) == 8  # one attempt each: a skip is final
    assert {(r["outcome"], r["error_type"]) for r in skipped} == {("skipped", "robots_disallowed")}
    assert all(r["last_error"].startswith("robots_disallowed: robots.txt of 127.0.0.1:") for r in skipped)
    assert await db.fetchval("SELECT count(*) FROM jobs WHERE state = 'dead'") == 0


async def test_the_group_of_our_user_agent_applies_and_its_crawl_delay_spaces_request_starts(
    start_coordinator: StartCoordinator, db: asyncpg.Pool
) -> None:
    coord = await start_coordinator(politeness=POLITE)
    delay = 1.0
    # Our product token's group allows everything and asks for a delay; every other crawler is shut out.
    text = f"User-agent: *\nDisallow: /\n\nUser-agent: crawlfleet\nCrawl-delay: {delay}\nDisallow: /private/\n"
    with serving(robots_site(text, pages=5, private=1)) as (site,):
        async with workers(coord.address, 2):
            ids = await enqueue(coord, [site.url(f"/page/{i}") for i in range(5)] + [site.url("/private/0")])
            ended = await finished(db, ids)
        starts = [r.at for r in site.requests if r.path.startswith("/page/")]
    assert sorted(ended.values()) == ["skipped"] + ["succeeded"] * 5
    assert len(starts) == 5
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    # The claim spaces lease starts by the delay in the database's time; a request starts after its
    # lease by the time the Lease answer takes to reach a worker and the worker to send the request.
    # That latency differs between two jobs by a scheduling hiccup at most: a quarter of the delay
    # covers a loaded 2-core host many times over, while a delay not applied shows gaps near 0.
    tolerance = 0.25 * delay
    assert min(gaps) >= delay - tolerance, gaps
    assert await db.fetchval("SELECT robots_delay_ms FROM hosts WHERE host = $1", host(site)) == 1000


async def test_an_unavailable_robots_txt_allows_everything(
    start_coordinator: StartCoordinator, db: asyncpg.Pool
) -> None:
    coord = await start_coordinator(politeness=POLITE)
    with serving(robots_site(None, pages=3, private=2)) as (site,):  # /robots.txt is a 404
        async with workers(coord.address, 1):
            ids = await enqueue(coord, [site.url(f"/page/{i}") for i in range(3)] + [site.url("/private/1")])
            ended = await finished(db, ids)
        assert site.hits["/robots.txt"] == 1
        assert site.hits["/private/1"] == 1
    assert set(ended.values()) == {"succeeded"}
    state = await db.fetchval("SELECT robots_state FROM hosts WHERE host = $1", host(site))
    assert state == "allow_all"


async def test_a_failing_robots_txt_pauses_the_host_and_its_jobs_wait_uncharged_until_a_fetch_works(
    start_coordinator: StartCoordinator, db: asyncpg.Pool
) -> None:
    coord = await start_coordinator(politeness=POLITE)
    failing = threading.Event()
    failing.set()

    def flaky_robots() -> Response:
        if failing.is_set():
            return 503, {"Content-Type": "text/plain"}, b"down for maintenance"
        return 200, {"Content-Type": "text/plain"}, b"User-agent: *\nDisallow: /private/\n"

    with serving(robots_site(None, pages=3, private=1)) as (site,):
        site.routes["/robots.txt"] = flaky_robots
        async with workers(coord.address, 2):
            ids = await enqueue(coord, [site.url(f"/page/{i}") for i in range(3)] + [site.url("/private/0")])

            async def refetched_while_down() -> bool:
                return site.hits["/robots.txt"] >= 3

            await eventually(refetched_while_down, what="robots.txt fetched again after each pause")
            row = await db.fetchrow(
                "SELECT robots_state, robots_failures, pause_reason FROM hosts WHERE host = $1", host(site)
            )
            assert row["robots_state"] == "unreachable" and row["robots_failures"] >= 2
            assert row["pause_reason"] == "robots_unreachable: robots.txt HTTP 503"
            assert [r.path for r in site.requests if r.path != "/robots.txt"] == []  # complete disallow
            jobs = await db.fetch("SELECT state::text, attempt FROM jobs WHERE id = ANY($1)", list(ids.values()))
            assert {(r["state"], r["attempt"]) for r in jobs} <= {("queued", 0), ("leased", 1)}  # never charged

            failing.clear()
            recovered_at = site.requests[-1].at
            ended = await finished(db, ids)
        pages = [r for r in site.requests if r.path != "/robots.txt"]
    assert ended == {url: "skipped" if "/private/" in url else "succeeded" for url in ids}
    assert sorted(r.path for r in pages) == [f"/page/{i}" for i in range(3)]
    assert min(r.at for r in pages) > recovered_at  # nothing fetched before robots.txt answered
    released = await db.fetch("SELECT DISTINCT outcome, error_type FROM job_attempts WHERE outcome = 'released'")
    assert [(r["outcome"], r["error_type"]) for r in released] == [("released", "robots_unreachable")]
    charged = await db.fetch("SELECT attempt FROM jobs WHERE id = ANY($1)", list(ids.values()))
    assert {r["attempt"] for r in charged} == {1}  # the released attempts were given back
    assert await db.fetchval("SELECT robots_failures FROM hosts WHERE host = $1", host(site)) == 0


async def test_a_host_nobody_answers_on_is_paused_and_its_job_stays_queued(
    start_coordinator: StartCoordinator, db: asyncpg.Pool
) -> None:
    coord = await start_coordinator(politeness=POLITE)
    with socket.socket() as bound_not_listening:  # connections are refused; no other test can take the port
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]
        async with workers(coord.address, 1):
            ids = await enqueue(coord, [f"http://127.0.0.1:{port}/page"])

            async def paused_twice() -> bool:
                failures = await db.fetchval("SELECT robots_failures FROM hosts WHERE host = $1", f"127.0.0.1:{port}")
                return bool(failures and failures >= 2)

            await eventually(paused_twice, what="the robots.txt to fail twice")
            reason = await db.fetchval("SELECT pause_reason FROM hosts WHERE host = $1", f"127.0.0.1:{port}")
            assert reason.startswith("robots_unreachable: robots.txt connection_refused")
            (job_id,) = ids.values()
            job = await db.fetchrow("SELECT state::text, attempt, last_error FROM jobs WHERE id = $1", job_id)
            assert job["attempt"] <= 1 and job["state"] in ("queued", "leased") and job["last_error"] is None


async def test_robots_txt_is_fetched_again_once_its_ttl_has_passed(
    start_coordinator: StartCoordinator, db: asyncpg.Pool
) -> None:
    coord = await start_coordinator(politeness=dataclasses.replace(POLITE, robots_ttl_seconds=1.0))
    with serving(robots_site("User-agent: *\nDisallow: /private/\n", pages=6)) as (site,):
        async with workers(coord.address, 2):
            await finished(db, await enqueue(coord, [site.url(f"/page/{i}") for i in range(3)]))
            assert site.hits["/robots.txt"] == 1

            async def expired() -> bool:
                return bool(
                    await db.fetchval("SELECT robots_expires_at <= now() FROM hosts WHERE host = $1", host(site))
                )

            await eventually(expired, what="the robots.txt to expire")
            await finished(db, await enqueue(coord, [site.url(f"/page/{i}") for i in range(3, 6)]))
        assert site.hits["/robots.txt"] == 2


async def test_redirects_are_followed_to_another_host_and_too_many_mean_no_robots_txt(
    start_coordinator: StartCoordinator, db: asyncpg.Pool
) -> None:
    coord = await start_coordinator(politeness=POLITE)
    with serving(
        robots_site("User-agent: *\nDisallow: /private/\n"),
        robots_site(None, pages=1, private=1),
        robots_site(None, pages=1, private=1),
    ) as (rules_host, redirected, looping):
        rules_host.routes["/rules.txt"] = rules_host.routes.pop("/robots.txt")
        redirected.routes["/robots.txt"] = redirect(rules_host.url("/rules.txt"), 301)
        # Six redirects, one more than RFC 9309 asks crawlers to follow.
        looping.routes["/robots.txt"] = redirect("/hop/1")
        for hop in range(1, 6):
            looping.routes[f"/hop/{hop}"] = redirect(f"/hop/{hop + 1}")
        looping.routes["/hop/6"] = robots("User-agent: *\nDisallow: /\n")
        async with workers(coord.address, 1):
            urls = [site.url(path) for site in (redirected, looping) for path in ("/page/0", "/private/0")]
            ended = await finished(db, await enqueue(coord, urls))
        assert rules_host.hits["/rules.txt"] == 1
        assert looping.hits["/hop/5"] == 1 and looping.hits["/hop/6"] == 0
    assert ended == {
        redirected.url("/page/0"): "succeeded",
        redirected.url("/private/0"): "skipped",
        looping.url("/page/0"): "succeeded",
        looping.url("/private/0"): "succeeded",
    }


async def test_a_browser_render_of_a_disallowed_url_is_skipped_before_any_browser_starts(
    start_coordinator: StartCoordinator, db: asyncpg.Pool
) -> None:
    coord = await start_coordinator(politeness=POLITE)
    with serving(robots_site("User-agent: *\nDisallow: /private/\n", private=1)) as (site,):
        async with workers(coord.address, 1) as (worker,):
            ids = await enqueue(coord, [site.url("/private/0")], render=jobs_pb2.RENDER_MODE_BROWSER)
            assert set((await finished(db, ids)).values()) == {"skipped"}
        assert [r.path for r in site.requests] == ["/robots.txt"]
    assert worker.metrics.jobs["scrape"].skipped == 1  # counted apart from failures


async def test_a_sitemap_job_obeys_and_reports_robots_txt_as_a_page_does(
    start_coordinator: StartCoordinator, db: asyncpg.Pool
) -> None:
    coord = await start_coordinator(politeness=POLITE)
    with serving(
        robots_site("User-agent: *\nDisallow: /private/\n", pages=1),
        robots_site("User-agent: *\nDisallow: /\n", pages=1),
    ) as (listed, closed):
        listed.routes["/sitemap.xml"] = blob(listed.url("/page/0").encode() + b"\n", "text/plain")
        roots = [listed.url("/"), closed.url("/")]
        sitemaps = [jobs_pb2.JobSpec(sitemap=jobs_pb2.SitemapSpec(url=root)) for root in roots]
        response = await coord.queue.Enqueue(pb.EnqueueRequest(jobs=sitemaps))
        ids = {root: job.id for root, job in zip(roots, response.jobs, strict=True)}
        async with workers(coord.address, 1):
            ended = await finished(db, ids)
            # The sitemap job's lease reported the robots.txt: the host's pages need no fetch of it.
            pages = await enqueue(coord, [listed.url("/page/0")])
            assert set((await finished(db, pages)).values()) == {"succeeded"}
    assert ended == {listed.url("/"): "succeeded", closed.url("/"): "skipped"}
    states = dict(
        await db.fetch("SELECT host, robots_state FROM hosts WHERE host = ANY($1)", [host(listed), host(closed)])
    )
    assert states == {host(listed): "rules", host(closed): "rules"}
    assert [r.path for r in closed.requests] == ["/robots.txt"]  # nothing else of a closed site
