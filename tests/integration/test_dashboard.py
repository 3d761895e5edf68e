"""The dashboard in a real Chromium against a live coordinator with real jobs: every page loads
without console errors and shows what the Admin API says, figures update live, and the dead
letter's requeue works for an admin and is refused for a viewer.

Screenshots of each page go to $CRAWLFLEET_DASHBOARD_SCREENSHOTS (default: under pytest's temp
dir); scripts/dashboard_screenshots.sh points it at docs/images.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from crawlfleet.coordinator.security.auth import Role
from crawlfleet.v1 import admin_pb2, crawls_pb2, job_queue_pb2_grpc, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.worker.pipeline.chromium import find_chromium
from tests.conftest import StartCoordinator
from tests.integration.dashboard_fleet import PAUSE_REASON, PAUSED_HOST, TOKENS, Fleet, admin_metadata, fleet_to_look_at

pytestmark = [
    pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed (playwright install chromium)"),
    pytest.mark.timeout(240),
]
# Generous: the machine may be shared with other test runs.
UI_TIMEOUT_MS = 20_000
SCREENSHOTS_ENV = "CRAWLFLEET_DASHBOARD_SCREENSHOTS"
expect.set_options(timeout=UI_TIMEOUT_MS)


@pytest.fixture
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get(SCREENSHOTS_ENV)
    path = Path(chosen) if chosen else tmp_path_factory.getbasetemp() / "dashboard-screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=find_chromium(), headless=True)
        yield launched
        await launched.close()


@pytest.fixture
async def fleet(start_coordinator: StartCoordinator, db: asyncpg.Pool) -> AsyncIterator[Fleet]:
    async with fleet_to_look_at(start_coordinator, db) as seeded:
        yield seeded


class Console:
    """Errors a page logs or throws; each page visit must leave none."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._message)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _message(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def assert_clean(self, where: str) -> None:
        assert not self.errors, f"console errors on {where}: {self.errors}"


async def signed_in(browser: Browser, fleet: Fleet, role: Role) -> Page:
    context = await browser.new_context(base_url=fleet.dashboard, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = await context.new_page()
    await page.goto("/")
    await expect(page).to_have_url(f"{fleet.dashboard}/login?next=%2F")
    await page.get_by_label("crawlfleet token").fill(TOKENS[role])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    return page


async def texts(page: Page, selector: str) -> list[str]:
    return [text.strip() for text in await page.locator(selector).all_inner_texts()]


async def test_every_page_shows_what_the_admin_api_says(fleet: Fleet, browser: Browser, screenshots: Path) -> None:
    md = admin_metadata()
    page = await signed_in(browser, fleet, Role.VIEWER)
    console = Console(page)

    # Overview: the tiles and health figures are GetQueueHealth's; the charts are drawn.
    health = await fleet.admin.GetQueueHealth(admin_pb2.GetQueueHealthRequest(), metadata=md)
    for entry in health.states:
        name = jobs_pb2.JobState.Name(entry.state).removeprefix("JOB_STATE_").lower()
        await expect(page.get_by_test_id(f"state-{name}")).to_have_text(str(entry.count))
    await expect(page.get_by_test_id("dead")).to_have_text(str(health.dead))
    assert health.dead == 2
    await expect(page.get_by_test_id("workers")).to_have_text(str(len(health.workers)))
    # Each worker's leases out of its slots, and the fleet's slots, as the Admin API has them.
    assert [w.slots for w in health.workers] == [4]  # the fleet's one worker runs 4 slots
    for worker in health.workers:
        row = page.locator(f"tr[data-worker='{worker.worker_id}']")
        await expect(row.get_by_test_id("worker-leases")).to_have_text(f"{worker.in_flight} / {worker.slots}")
    await expect(page.get_by_test_id("slots")).to_have_text(str(sum(w.slots for w in health.workers)))
    await expect(page.get_by_test_id("due")).to_have_text(str(health.due))
    for chart in ("throughput", "latency"):
        await expect(page.locator(f"[data-chart={chart}][data-ready=true] canvas")).to_be_visible()
    # Live: a job enqueued now shows up on the open page without a reload.
    queued = next(s.count for s in health.states if s.state == jobs_pb2.JOB_STATE_QUEUED)
    queue = job_queue_pb2_grpc.JobQueueStub(fleet.coord.channel)
    await queue.Enqueue(pb.EnqueueRequest(jobs=[jobs_pb2.JobSpec(noop=jobs_pb2.NoopSpec())]), metadata=md)
    await expect(page.get_by_test_id("state-queued")).to_have_text(str(queued + 1))
    await page.screenshot(path=screenshots / "dashboard-overview.png", full_page=True)
    console.assert_clean("the overview")

    # Hosts: the paused host with the operator's reason, as GetHost has it.
    await page.get_by_role("link", name="Hosts", exact=True).click()
    host = (await fleet.admin.GetHost(admin_pb2.GetHostRequest(host=PAUSED_HOST), metadata=md)).host
    row = page.locator(f"tr[data-host='{PAUSED_HOST}']")
    await expect(row.get_by_test_id("pause-reason")).to_have_text(host.pause_reason)
    assert host.pause_reason == f"operator: {PAUSE_REASON}"
    await expect(row.get_by_test_id("paused")).to_have_text("until resumed")
    await expect(row.get_by_test_id("queued")).to_have_text(str(host.queued))
    await page.screenshot(path=screenshots / "dashboard-hosts.png", full_page=True)
    await page.get_by_label("paused only").check()
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("tr[data-host]")).to_have_count(1)
    console.assert_clean("the hosts page")

    # Crawls: the list's counts (ListCrawls') agree with GetCrawl's, the depth histogram drawn.
    crawl = (await fleet.crawls.GetCrawl(crawls_pb2.GetCrawlRequest(crawl_id=fleet.crawl_id), metadata=md)).crawl
    assert crawl.state == crawls_pb2.CRAWL_STATE_RUNNING and crawl.succeeded >= 1 and crawl.queued >= 1
    await page.get_by_role("link", name="Crawls", exact=True).click()
    listed = page.locator(f"tr[data-crawl='{crawl.id}']")
    await expect(listed.get_by_test_id("enqueued")).to_have_text(str(crawl.pages_enqueued))
    await expect(listed.get_by_test_id("succeeded")).to_have_text(str(crawl.succeeded))
    await page.screenshot(path=screenshots / "dashboard-crawls.png", full_page=True)
    await listed.get_by_role("link", name=str(crawl.id)).click()
    for name in ("pages_enqueued", "succeeded", "failed", "queued"):
        await expect(page.get_by_test_id(name)).to_have_text(str(getattr(crawl, name)))
    await expect(page.locator("[data-chart=depths][data-ready=true] canvas")).to_be_visible()
    await expect(page.get_by_role("link", name="Cancel this crawl…")).to_be_visible()
    await page.screenshot(path=screenshots / "dashboard-crawl.png", full_page=True)
    console.assert_clean("the crawl page")

    # Jobs: the filter and cursor paging are ListJobs'.
    await page.goto("/jobs?page_size=10")
    first = await fleet.admin.ListJobs(admin_pb2.ListJobsRequest(page_size=10), metadata=md)
    assert first.next_page_token
    assert await texts(page, "tr[data-job] td:first-child") == [str(j.id) for j in first.jobs]
    await page.screenshot(path=screenshots / "dashboard-jobs.png", full_page=True)
    await page.get_by_test_id("next-page").click()
    second = await fleet.admin.ListJobs(
        admin_pb2.ListJobsRequest(page_size=10, page_token=first.next_page_token), metadata=md
    )
    await expect(page.locator("tr[data-job] td:first-child")).to_have_text([str(j.id) for j in second.jobs])
    await page.get_by_label("succeeded").check()
    await page.get_by_role("button", name="Filter").click()
    only = admin_pb2.JobFilter(states=[jobs_pb2.JOB_STATE_SUCCEEDED])
    succeeded = await fleet.admin.ListJobs(admin_pb2.ListJobsRequest(filter=only, page_size=10), metadata=md)
    await expect(page.locator("tr[data-job] td:first-child")).to_have_text([str(j.id) for j in succeeded.jobs])
    console.assert_clean("the jobs page")

    # A job: its attempts, fields, JSON-LD, links and the image's thumbnail itself.
    job = (await fleet.admin.GetJob(admin_pb2.GetJobRequest(job_id=fleet.succeeded_job), metadata=md)).job
    scraped = job.result.scrape
    await page.goto(f"/jobs/{job.id}")
    await expect(page.get_by_test_id("page-title")).to_have_text(scraped.title)
    await expect(page.locator("[data-testid=attempts] li")).to_have_count(len(job.attempts))
    price = next(f.values[0] for f in scraped.fields if f.name == "price")
    await expect(page.get_by_test_id("fields")).to_contain_text(price)
    await expect(page.get_by_test_id("json-ld")).to_contain_text(fleet.site.catalogue.products[0].sku)
    await expect(page.locator("[data-testid=links] tbody tr")).to_have_count(len(scraped.links))
    thumbnail = page.get_by_test_id("thumbnail").first
    await expect(thumbnail).to_be_visible()
    await page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=await thumbnail.element_handle())
    await page.screenshot(path=screenshots / "dashboard-job.png", full_page=True)
    console.assert_clean("the job page")

    # The dead letter: the dead jobs, newest first, with why they died.
    await page.get_by_role("link", name="Dead letter").click()
    assert await texts(page, "tr[data-job] td:nth-child(2)") == [str(i) for i in sorted(fleet.dead_jobs, reverse=True)]
    await expect(page.locator(f"tr[data-job='{fleet.dead_jobs[0]}']")).to_contain_text("http_4xx")
    await page.screenshot(path=screenshots / "dashboard-dead.png", full_page=True)
    # Why the newest one died: its attempt's error, on its own page.
    await page.get_by_role("link", name=str(fleet.dead_jobs[-1]), exact=True).click()
    died = (await fleet.admin.GetJob(admin_pb2.GetJobRequest(job_id=fleet.dead_jobs[-1]), metadata=md)).job
    await expect(page.get_by_test_id("last-error")).to_have_text(died.last_error)
    await expect(page.get_by_test_id("attempt-error")).to_have_text(
        f"{died.attempts[0].error_type}: {died.attempts[0].error_message}"
    )
    console.assert_clean("the dead letter")


async def test_requeue_takes_a_confirmation_and_an_admin(fleet: Fleet, browser: Browser, screenshots: Path) -> None:
    md = admin_metadata()
    dead_id = fleet.dead_jobs[0]

    async def state() -> int:
        return (await fleet.admin.GetJob(admin_pb2.GetJobRequest(job_id=dead_id), metadata=md)).job.state

    async def ask_to_requeue(page: Page) -> None:
        await page.get_by_role("link", name="Dead letter").click()
        await page.get_by_label(f"choose job {dead_id}").check()
        await page.get_by_role("button", name="Requeue chosen…").click()
        await expect(page.get_by_test_id("confirm-message")).to_contain_text(str(dead_id))

    # A viewer sees the confirmation, and the coordinator refuses the action.
    viewer = await signed_in(browser, fleet, Role.VIEWER)
    await ask_to_requeue(viewer)
    assert await state() == jobs_pb2.JOB_STATE_DEAD  # the confirmation step changed nothing
    await viewer.get_by_role("button", name="Requeue", exact=True).click()
    await expect(viewer.get_by_test_id("error")).to_contain_text("PERMISSION_DENIED")
    assert await state() == jobs_pb2.JOB_STATE_DEAD

    # An admin's requeue goes through, and the page says what it did.
    admin = await signed_in(browser, fleet, Role.ADMIN)
    console = Console(admin)
    await ask_to_requeue(admin)
    await admin.screenshot(path=screenshots / "dashboard-confirm.png")
    await admin.get_by_role("button", name="Requeue", exact=True).click()
    await expect(admin.get_by_test_id("note")).to_have_text(f"requeued 1 job(s): {dead_id}")
    assert await state() == jobs_pb2.JOB_STATE_QUEUED
    await expect(admin.locator(f"tr[data-job='{dead_id}']")).to_have_count(0)
    console.assert_clean("the admin's requeue")

    # Cancelling the crawl takes a confirmation too; a viewer watching it sees it end live.
    await viewer.goto(f"/crawls/{fleet.crawl_id}")
    await expect(viewer.locator("h1 [data-live=state]")).to_have_text("running")
    await admin.goto(f"/crawls/{fleet.crawl_id}")
    await admin.get_by_role("link", name="Cancel this crawl…").click()
    await admin.get_by_role("button", name="Cancel the crawl").click()
    await expect(admin.get_by_test_id("note")).to_contain_text("crawl cancelled")
    crawl = (await fleet.crawls.GetCrawl(crawls_pb2.GetCrawlRequest(crawl_id=fleet.crawl_id), metadata=md)).crawl
    assert crawl.state == crawls_pb2.CRAWL_STATE_CANCELLED
    await expect(viewer.locator("h1 [data-live=state]")).to_have_text("cancelled")
    await expect(viewer.get_by_test_id("queued")).to_have_text(str(crawl.queued))
    console.assert_clean("the crawl's cancel")

    # An action without the page's CSRF token is refused, whoever is signed in.
    other = fleet.dead_jobs[1]
    response = await admin.request.post("/dead/requeue", form={"job_id": str(other)})
    assert response.status == 403 and "CSRF" in await response.text()
    assert (await fleet.admin.GetJob(admin_pb2.GetJobRequest(job_id=other), metadata=md)).job.state == (
        jobs_pb2.JOB_STATE_DEAD
    )

    # Bad input is a 400 that names the parameter.
    response = await admin.request.get("/jobs?state=zombie")
    body = await response.text()
    assert response.status == 400 and "state: unknown state" in body and "zombie" in body
    response = await admin.request.get("/jobs?page_size=5000")
    assert response.status == 400 and "page_size" in await response.text()
