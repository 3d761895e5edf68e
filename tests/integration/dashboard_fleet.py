"""A small fleet worth looking at, for the dashboard's browser tests: a coordinator with tokens,
pages of the demo shop scraped by a real worker (with images and JSON-LD), dead jobs, a paused host,
a crawl still running, and the dashboard serving it over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import uvicorn

from crawlfleet.common.channel import ChannelSecurity
from crawlfleet.coordinator.security.auth import Role, TokenEntry
from crawlfleet.coordinator.security.settings import SecuritySettings
from crawlfleet.dashboard.app import build_app
from crawlfleet.dashboard.gateway import Coordinators
from crawlfleet.dashboard.settings import DashboardSettings
from crawlfleet.demo import DemoSite
from crawlfleet.v1 import admin_pb2, admin_pb2_grpc, crawls_pb2, crawls_pb2_grpc, job_queue_pb2_grpc, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.worker.pipeline.settings import ScrapeSettings
from crawlfleet.worker.runner import Worker
from crawlfleet.worker.settings import WorkerSettings
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import eventually, seconds

TOKENS = {Role.ADMIN: "dash-admin", Role.VIEWER: "dash-viewer", Role.WORKER: "dash-worker"}
PAUSED_HOST = "paused.example"
PAUSE_REASON = "vendor asked us to stop until Monday"
# The crawl's host leases a page at most this often, so that the worker stops mid-crawl.
CRAWL_HOST_DELAY = 0.4
CRAWL_PAGES_BEFORE_STOP = 3


def admin_metadata() -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {TOKENS[Role.ADMIN]}"),)


@dataclass
class Fleet:
    coord: RunningCoordinator
    site: DemoSite
    admin: admin_pb2_grpc.AdminAsyncStub
    crawls: crawls_pb2_grpc.CrawlsAsyncStub
    dashboard: str  # base URL
    succeeded_job: int  # a product page with an image, fields and JSON-LD
    dead_jobs: list[int]
    crawl_id: int


def security() -> SecuritySettings:
    return SecuritySettings(tokens=tuple(TokenEntry.from_token(r, f"test-{r}", t) for r, t in TOKENS.items()))


async def run_worker_until(coord: RunningCoordinator, done: object) -> None:
    """A real worker leases and runs jobs until ``done()`` holds, then shuts down (releasing the rest)."""
    settings = WorkerSettings(
        coordinator=coord.address,
        worker_id="dash-worker-1",
        slots=4,
        lease_wait=0.5,
        shutdown_grace=0.0,
        security=ChannelSecurity(token=TOKENS[Role.WORKER]),
        scrape=ScrapeSettings(allow_loopback=True, image_timeout=10),
    )
    async with Worker(settings) as worker:
        task = asyncio.create_task(worker.run())
        try:
            await eventually(done, timeout=60, what="the worker's jobs")  # type: ignore[arg-type]
        finally:
            await worker.shutdown()
            await task


async def seed(coord: RunningCoordinator, site: DemoSite, db: asyncpg.Pool) -> tuple[int, list[int], int]:
    md = admin_metadata()
    queue = job_queue_pb2_grpc.JobQueueStub(coord.channel)
    admin = admin_pb2_grpc.AdminStub(coord.channel)
    crawls = crawls_pb2_grpc.CrawlsStub(coord.channel)
    product = site.catalogue.products[0]
    fields = [
        jobs_pb2.FieldSpec(name="name", css="h1"),
        jobs_pb2.FieldSpec(name="price", json_ld="offers.price"),
    ]
    specs = [
        jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url=site.base + product.path, fields=fields)),
        jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url=site.base + site.catalogue.products[1].path)),
        # A page the shop does not have: a 404 is no reason to retry, so the job dies.
        jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url=site.base + "/product/no-such-teapot")),
        jobs_pb2.JobSpec(noop=jobs_pb2.NoopSpec(fail_message="upstream said no", fail_retryable=False)),
    ]
    ids = [j.id for j in (await queue.Enqueue(pb.EnqueueRequest(jobs=specs), metadata=md)).jobs]

    async def all_finished() -> bool:
        states = await db.fetch("SELECT state::text FROM jobs WHERE id = ANY($1)", ids)
        return all(r["state"] in ("succeeded", "dead") for r in states)

    await run_worker_until(coord, all_finished)

    # A host an operator paused, with work waiting for it.
    await queue.Enqueue(
        pb.EnqueueRequest(jobs=[jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url=f"http://{PAUSED_HOST}/a"))]),
        metadata=md,
    )
    await admin.PauseHost(admin_pb2.PauseHostRequest(host=PAUSED_HOST, reason=PAUSE_REASON), metadata=md)

    # A crawl of the shop that a worker leaves half done.
    shop_host = site.base.split("://", 1)[1].rstrip("/")
    await admin.SetHostPolicy(
        admin_pb2.SetHostPolicyRequest(pattern=shop_host, delay=seconds(CRAWL_HOST_DELAY)), metadata=md
    )
    spec = crawls_pb2.CrawlSpec(
        seeds=[site.base + "/"],
        max_pages=200,
        page=jobs_pb2.ScrapeSpec(render=jobs_pb2.RENDER_MODE_HTTP, skip_images=True),
    )
    crawl_id = (await crawls.StartCrawl(crawls_pb2.StartCrawlRequest(spec=spec), metadata=md)).crawl_id

    async def some_pages() -> bool:
        crawl = (await crawls.GetCrawl(crawls_pb2.GetCrawlRequest(crawl_id=crawl_id), metadata=md)).crawl
        return crawl.succeeded >= CRAWL_PAGES_BEFORE_STOP

    await run_worker_until(coord, some_pages)
    return ids[0], ids[2:], crawl_id


@contextlib.asynccontextmanager
async def serving_dashboard(coord: RunningCoordinator) -> AsyncIterator[str]:
    """The dashboard on a free loopback port, talking to ``coord``; yields its base URL."""
    settings = DashboardSettings(listen="127.0.0.1:0", coordinators=(coord.address,), refresh_seconds=0.5)
    coordinators = Coordinators(settings.coordinators, settings.security, timeout=30.0)
    config = uvicorn.Config(
        build_app(settings, coordinators), host="127.0.0.1", port=0, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    try:
        await eventually(started, what="the dashboard to listen")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        await coordinators.close()


@contextlib.asynccontextmanager
async def fleet_to_look_at(start_coordinator: StartCoordinator, db: asyncpg.Pool) -> AsyncIterator[Fleet]:
    coord = await start_coordinator(security=security())
    with DemoSite() as site:
        succeeded, dead, crawl_id = await seed(coord, site, db)
        async with serving_dashboard(coord) as base:
            yield Fleet(
                coord=coord,
                site=site,
                admin=admin_pb2_grpc.AdminStub(coord.channel),
                crawls=crawls_pb2_grpc.CrawlsStub(coord.channel),
                dashboard=base,
                succeeded_job=succeeded,
                dead_jobs=dead,
                crawl_id=crawl_id,
            )
