"""A page over time, end to end: coordinator and worker processes scrape a loopback site that
honours conditional requests. Declared fields are stored and exported; a revisit with the first
fetch's validators is answered 304 and stored as not modified, without any image request; once
the page changes, the revisit stores it in full with a new content hash, and only it is exported as
changed."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
from collections.abc import AsyncIterator, Iterator

import asyncpg
import grpc
import pytest

from crawlfleet.cli.main import main
from crawlfleet.v1 import admin_pb2, admin_pb2_grpc, job_queue_pb2_grpc, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.e2e.processes import Fleet, Process
from tests.helpers import eventually
from tests.site import PHOTO_JPEG, PHOTO_PNG, LocalSite, Response, blob, html

pytestmark = pytest.mark.e2e
FIELDS = [
    jobs_pb2.FieldSpec(name="title", css="h1"),
    jobs_pb2.FieldSpec(name="price", json_ld="offers.price"),
    jobs_pb2.FieldSpec(name="photos", css="img", attribute="src", all=True),
]


class ShopSite(LocalSite):
    """A product page whose content and ETag change with `version`, with two images."""

    def __init__(self) -> None:
        super().__init__()
        self.version = 1
        self.routes.update(
            {
                "/teapot": self.teapot,
                "/img/a.jpg": blob(PHOTO_JPEG, "image/jpeg"),
                "/img/b.png": blob(PHOTO_PNG, "image/png"),
            }
        )

    def teapot(self) -> Response:
        offer = {
            "@context": "https://schema.org",
            "@graph": [{"@type": "Product", "offers": {"price": 9 + self.version}}],
        }
        head = f'<script type="application/ld+json">{json.dumps(offer)}</script>'
        body = (
            f"<h1>Teapot v{self.version}</h1><img src='/img/a.jpg'><img src='/img/b.png'>"
            "<div class=related><a href='/mug'>Mug</a></div><footer><a href='/legal'>Legal</a></footer>"
        )
        headers = {"Content-Type": "text/html; charset=utf-8", "ETag": f'"teapot-{self.version}"'}
        return 200, headers, html("Teapot", body, head)

    def image_hits(self) -> int:
        return self.hits["/img/a.jpg"] + self.hits["/img/b.png"]


@pytest.fixture
def site() -> Iterator[ShopSite]:
    served = ShopSite()
    served.start()
    yield served
    served.stop()


@pytest.fixture
async def scraping(fleet: Fleet, db_dsn: str) -> AsyncIterator[Process]:
    coordinator = await fleet.coordinator("coordinator", db_dsn)
    fleet.worker("worker", coordinator.port or 0, "--slots", "2")
    yield coordinator


async def scrape(coordinator: Process, db: asyncpg.Pool, key: str, **options: object) -> jobs_pb2.Job:
    """One scrape job (its own, by key), waited for; the job as GetJob returns it."""
    spec = jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(**options), idempotency_key=key)  # type: ignore[arg-type]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{coordinator.port}") as channel:
        (enqueued,) = (await job_queue_pb2_grpc.JobQueueStub(channel).Enqueue(pb.EnqueueRequest(jobs=[spec]))).jobs

        async def finished() -> bool:
            state = await db.fetchval("SELECT state::text FROM jobs WHERE id = $1", enqueued.id)
            return state in ("succeeded", "dead")

        await eventually(finished, timeout=60, interval=0.1, what=f"job {enqueued.id} to finish")
        job = (await admin_pb2_grpc.AdminStub(channel).GetJob(admin_pb2.GetJobRequest(job_id=enqueued.id))).job
    assert job.state == jobs_pb2.JOB_STATE_SUCCEEDED, job.last_error
    return job


async def export(coordinator: Process, *args: str) -> list[dict[str, object]]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["--coordinator", f"127.0.0.1:{coordinator.port}", "export", *args]
    code = await asyncio.to_thread(main, argv, stdin=io.StringIO(), stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_fields_then_not_modified_then_changed(scraping: Process, db: asyncpg.Pool, site: ShopSite) -> None:
    url = site.url("/teapot")
    first = await scrape(scraping, db, "first", url=url, fields=FIELDS, follow_selectors=[".related"])
    page = first.result.scrape
    assert {f.name: list(f.values) for f in page.fields} == {
        "title": ["Teapot v1"],
        "price": ["10"],
        "photos": ["/img/a.jpg", "/img/b.png"],
    }
    assert {link.url.removeprefix(site.base): link.followed for link in page.links} == {"/mug": True, "/legal": False}
    assert [image.format for image in page.images] == ["JPEG", "PNG"] and site.image_hits() == 2
    stored = await db.fetchrow("SELECT fields, content_sha256, not_modified FROM pages WHERE job_id = $1", first.id)
    assert json.loads(stored["fields"])["photos"] == ["/img/a.jpg", "/img/b.png"]
    assert stored["content_sha256"] == page.content_sha256 and not stored["not_modified"]
    (record,) = await export(scraping, "--url-prefix", url)
    assert record["fields"] == {"title": "Teapot v1", "price": "10", "photos": ["/img/a.jpg", "/img/b.png"]}
    since: dt.datetime = await db.fetchval("SELECT clock_timestamp()")

    # The revisit sends the first fetch's ETag: a 304, stored as a page that says so, no image work.
    etag = page.headers["etag"]
    again = await scrape(scraping, db, "again", url=url, fields=FIELDS, if_none_match=etag)
    assert again.result.scrape.not_modified and again.result.scrape.status_code == 304
    assert not again.result.scrape.fields and not again.result.scrape.images
    row = await db.fetchrow("SELECT status_code, not_modified, content_sha256 FROM pages WHERE job_id = $1", again.id)
    assert (row["status_code"], row["not_modified"], row["content_sha256"]) == (304, True, None)
    assert site.image_hits() == 2 and site.hits["/teapot"] == 2
    assert await export(scraping, "--changed-since", since.isoformat()) == []

    # Changed: the same validators get the page in full, with a new content hash.
    site.version = 2
    changed = await scrape(scraping, db, "changed", url=url, fields=FIELDS, if_none_match=etag)
    assert not changed.result.scrape.not_modified and changed.result.scrape.status_code == 200
    assert changed.result.scrape.content_sha256 != page.content_sha256
    records = await export(scraping, "--changed-since", since.isoformat(), "--url-prefix", url)
    assert [r["job_id"] for r in records] == [changed.id]
    assert records[0]["fields"] == {"title": "Teapot v2", "price": "11", "photos": ["/img/a.jpg", "/img/b.png"]}
