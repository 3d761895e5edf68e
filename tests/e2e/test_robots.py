"""robots.txt end to end: a coordinator process that obeys it, two worker processes, and loopback
sites whose own request logs say what the fleet fetched. The CLI reads the outcome as an operator
would."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import asyncpg
import grpc
import pytest

from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import job_queue_pb2_grpc, jobs_pb2
from crawlfleet.worker.pipeline.settings import DEFAULT_USER_AGENT
from tests.e2e.processes import ROOT, Fleet
from tests.helpers import eventually
from tests.site import LocalSite, Response, blob, html, page

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

# After the unthrottled defaults of the test fleet: obey robots.txt, and keep pauses short.
POLITE_FLAGS = (
    "--obey-robots",
    "--host-concurrency",
    "4",
    "--host-backoff-initial-seconds",
    "0.2",
    "--host-backoff-max-seconds",
    "0.5",
)
PAGES = 10


def shop(robots: Callable[[], Response] | None = None) -> LocalSite:
    """PAGES items and PAGES private pages, and `robots` at /robots.txt (None: a 404)."""
    site = LocalSite()
    for i in range(PAGES):
        site.routes[f"/item/{i}"] = page(html(f"Item {i}", f"<p>item {i}</p>"))
        site.routes[f"/private/{i}"] = page(html(f"Private {i}", "<p>staff only</p>"))
    if robots is not None:
        site.routes["/robots.txt"] = robots
    return site.start()


@pytest.fixture
def sites() -> Iterator[tuple[LocalSite, LocalSite, LocalSite]]:
    ruled = shop(blob(b"User-agent: *\nDisallow: /private/\n", "text/plain"))
    unruled = shop()  # robots.txt is a 404
    flaky = shop()
    yield ruled, unruled, flaky
    for site in (ruled, unruled, flaky):
        site.stop()


async def cli(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "crawlfleet.cli", "--coordinator", f"127.0.0.1:{port}", "--json", *args]
    return await asyncio.to_thread(subprocess.run, command, cwd=ROOT, capture_output=True, text=True, timeout=120)


async def test_a_fleet_fetches_each_robots_txt_once_and_skips_what_it_disallows(
    fleet: Fleet, db: asyncpg.Pool, db_dsn: str, sites: tuple[LocalSite, LocalSite, LocalSite]
) -> None:
    ruled, unruled, flaky = sites
    down = threading.Event()
    down.set()

    def flaky_robots() -> Response:
        if down.is_set():
            return 500, {"Content-Type": "text/plain"}, b"internal error"
        return 200, {"Content-Type": "text/plain"}, b"User-agent: crawlfleet\nDisallow: /private/\n"

    flaky.routes["/robots.txt"] = flaky_robots
    coordinator = await fleet.coordinator("coordinator", db_dsn, *POLITE_FLAGS)
    port = coordinator.port or 0
    for n in range(2):
        fleet.worker(f"worker-{n}", port, "--slots", "4", "--kinds", "scrape")

    urls = [site.url(f"/{kind}/{i}") for site in sites for kind in ("item", "private") for i in range(PAGES)]
    specs = [jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url=url, skip_images=True)) for url in urls]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await job_queue_pb2_grpc.JobQueueStub(channel).Enqueue(pb.EnqueueRequest(jobs=specs))

    async def flaky_paused() -> bool:
        return flaky.hits["/robots.txt"] >= 2

    await eventually(flaky_paused, timeout=60, what="the failing robots.txt to be fetched again after a pause")
    assert [r.path for r in flaky.requests if r.path != "/robots.txt"] == []  # nothing while unreachable
    down.clear()

    waited = await cli(port, "wait", "--all", "--timeout", "90s")
    assert waited.returncode == 0, waited.stdout + waited.stderr + coordinator.output()[-2000:]
    stats = json.loads((await cli(port, "stats")).stdout)["states"]
    # Items everywhere and the private pages of the host without rules succeed; the private pages
    # of the two hosts whose rules disallow them are skipped.
    assert (stats["succeeded"], stats["skipped"], stats["dead"]) == (4 * PAGES, 2 * PAGES, 0)

    for site in (ruled, unruled):
        assert site.hits["/robots.txt"] == 1  # once per host, for two worker processes and every job
    for site in sites:
        assert site.requests[0].path == "/robots.txt"
        assert {r.user_agent for r in site.requests} == {DEFAULT_USER_AGENT}
    assert not [r for site in (ruled, flaky) for r in site.requests if r.path.startswith("/private/")]
    assert sum(unruled.hits[f"/private/{i}"] for i in range(PAGES)) == PAGES  # no rules: fetched
    # The flaky host's jobs waited uncharged: each ended after one charged attempt.
    attempts = await db.fetch("SELECT attempt FROM jobs WHERE target_url LIKE $1 || '%'", flaky.base + "/")
    assert {r["attempt"] for r in attempts} == {1}
