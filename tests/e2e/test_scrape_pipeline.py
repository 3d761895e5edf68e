"""The scrape pipeline end to end: coordinator and worker processes scrape the local test site;
the assertions read what the coordinator stored. Everything here stays on loopback; tests that
involve blocked destinations run in test_egress.py, inside a network namespace."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import grpc
import pytest
from PIL import Image

from crawlfleet.v1 import admin_pb2, admin_pb2_grpc, job_queue_pb2_grpc, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.certs import make_pki
from tests.e2e.processes import Fleet, Process, free_port
from tests.helpers import eventually, seconds
from tests.site import PHOTO_JPEG, LocalSite, catalogue_site, html, page

pytestmark = pytest.mark.e2e
TERMINAL = ("succeeded", "dead")


@pytest.fixture(scope="module")
def site() -> Iterator[LocalSite]:
    served = catalogue_site().start()
    yield served
    served.stop()


@pytest.fixture
async def scraping(fleet: Fleet, db_dsn: str) -> AsyncIterator[Process]:
    coordinator = await fleet.coordinator("coordinator", db_dsn)
    for n in range(2):
        fleet.worker(f"worker-{n}", coordinator.port or 0, "--slots", "4", "--max-body-bytes", str(1024 * 1024))
    yield coordinator


def spec(url: str, render: int = jobs_pb2.RENDER_MODE_HTTP, attempts: int = 1, **fields: object) -> jobs_pb2.JobSpec:
    policy = jobs_pb2.RetryPolicy(
        maximum_attempts=attempts, initial_interval=seconds(0.01), maximum_interval=seconds(0.01)
    )
    return jobs_pb2.JobSpec(
        scrape=jobs_pb2.ScrapeSpec(url=url, render=render, **fields),  # type: ignore[arg-type]
        retry_policy=policy,
        idempotency_key=f"{url}#{render}",
    )


async def run(port: int, db: asyncpg.Pool, specs: list[jobs_pb2.JobSpec]) -> list[int]:
    """Enqueue and wait until every job is finished (or waiting on a long retry)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = await job_queue_pb2_grpc.JobQueueStub(channel).Enqueue(pb.EnqueueRequest(jobs=specs))
    ids = [j.id for j in response.jobs]

    async def settled() -> bool:
        open_jobs = await db.fetchval(
            "SELECT count(*) FROM jobs WHERE id = ANY($1) AND state NOT IN ('succeeded', 'dead') "
            "AND NOT (state = 'queued' AND run_at > now() + interval '30 seconds')",
            ids,
        )
        return bool(open_jobs == 0)

    await eventually(settled, timeout=90, interval=0.1, what="every scrape job to finish")
    return ids


async def job_row(db: asyncpg.Pool, job_id: int) -> asyncpg.Record:
    return await db.fetchrow("SELECT state::text, last_error, result FROM jobs WHERE id = $1", job_id)


async def test_static_page_yields_page_data_images_and_thumbnails(
    scraping: Process, db: asyncpg.Pool, site: LocalSite
) -> None:
    (job_id,) = await run(scraping.port or 0, db, [spec(site.url("/static"))])
    assert (await job_row(db, job_id))["state"] == "succeeded"
    page = await db.fetchrow("SELECT * FROM pages WHERE job_id = $1", job_id)
    assert page["title"] == "Blue teapot" and page["status_code"] == 200
    assert page["meta_description"] == "A blue teapot for four."
    assert page["canonical_url"] == site.url("/product/teapot")
    assert page["language"] == "en" and page["rendered_with"] == "http"
    assert "Holds four cups of tea." in page["main_text"] and "footer text" not in page["main_text"]
    links = {link["url"]: link for link in json.loads(page["links"])}
    assert links[site.url("/product/mug")]["same_host"] is True
    assert links["https://elsewhere.example/x"]["same_host"] is False
    assert json.loads(page["json_ld"])[0]["@type"] == "Product"
    assert json.loads(page["open_graph"])["og:title"] == "Teapot OG"

    images = {
        r["url"].removeprefix(site.base): r
        for r in await db.fetch(
            "SELECT pi.url, pi.error_type, i.* FROM page_images pi LEFT JOIN images i ON i.sha256 = pi.image_sha256 "
            "WHERE pi.job_id = $1",
            job_id,
        )
    }
    assert images["/img/photo.jpg"]["sha256"] == hashlib.sha256(PHOTO_JPEG).hexdigest()
    assert (images["/img/photo.jpg"]["format"], images["/img/photo.jpg"]["width"]) == ("JPEG", 120)
    assert images["/img/photo.png"]["format"] == "PNG" and images["/img/photo.gif"]["format"] == "GIF"
    assert images["/img/photo.webp"]["format"] == "WEBP"  # from og:image
    assert (images["/img/rotated.jpg"]["width"], images["/img/rotated.jpg"]["height"]) == (40, 80)
    assert images["/img/corrupt.jpg"]["error_type"] == "corrupt_image"
    assert images["/img/bomb.png"]["error_type"] == "decompression_bomb"
    assert images["/img/missing.png"]["error_type"] == "http_404"

    thumbs = await db.fetch("SELECT * FROM thumbnails WHERE image_sha256 = $1", images["/img/rotated.jpg"]["sha256"])
    assert thumbs, "no thumbnails stored"
    for thumb in thumbs:
        assert hashlib.sha256(thumb["data"]).hexdigest() == thumb["sha256"]
        decoded = Image.open(io.BytesIO(thumb["data"]))
        assert decoded.format == "WEBP" and decoded.size == (thumb["width"], thumb["height"])
        assert decoded.size[1] > decoded.size[0]  # EXIF orientation applied

    async with grpc.aio.insecure_channel(f"127.0.0.1:{scraping.port}") as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        job = (await admin.GetJob(admin_pb2.GetJobRequest(job_id=job_id))).job
        stored = [t for image in job.result.scrape.images for t in image.thumbnails]
        assert stored and all(not t.data for t in stored)  # bytes live in the thumbnail store
        got = await admin.GetThumbnail(admin_pb2.GetThumbnailRequest(sha256=stored[0].sha256))
        assert hashlib.sha256(got.thumbnail.data).hexdigest() == stored[0].sha256


async def test_the_same_image_on_two_pages_is_stored_once(scraping: Process, db: asyncpg.Pool, site: LocalSite) -> None:
    ids = await run(scraping.port or 0, db, [spec(site.url("/gallery-a")), spec(site.url("/gallery-b"))])
    digest = hashlib.sha256(PHOTO_JPEG).hexdigest()
    assert (
        await db.fetchval("SELECT count(*) FROM page_images WHERE image_sha256 = $1 AND job_id = ANY($2)", digest, ids)
        == 2
    )
    assert await db.fetchval("SELECT count(*) FROM images WHERE sha256 = $1", digest) == 1
    referenced = set()
    for job_id in ids:
        result = jobs_pb2.JobResult.FromString((await job_row(db, job_id))["result"]).scrape
        referenced |= {t.sha256 for image in result.images for t in image.thumbnails}
    stored = await db.fetch("SELECT sha256 FROM thumbnails WHERE image_sha256 = $1", digest)
    # Both pages reference the same thumbnails; each is stored once (a small image's thumbnails
    # at 128 and 512 are the same bytes, so even those share one row).
    assert sorted(r["sha256"] for r in stored) == sorted(referenced) and referenced


async def test_javascript_page_needs_the_browser(scraping: Process, db: asyncpg.Pool, site: LocalSite) -> None:
    http_id, browser_id, auto_id = await run(
        scraping.port or 0,
        db,
        [
            spec(site.url("/spa"), jobs_pb2.RENDER_MODE_HTTP),
            spec(site.url("/spa"), jobs_pb2.RENDER_MODE_BROWSER, timeout=seconds(30)),
            spec(site.url("/spa"), jobs_pb2.RENDER_MODE_AUTO, timeout=seconds(30)),
        ],
    )
    texts = {r["job_id"]: r for r in await db.fetch("SELECT job_id, main_text, rendered_with FROM pages")}
    marker = "only exists once scripts run"
    assert marker not in texts[http_id]["main_text"]
    assert marker in texts[browser_id]["main_text"] and texts[browser_id]["rendered_with"] == "browser"
    assert marker in texts[auto_id]["main_text"] and texts[auto_id]["rendered_with"] == "browser"


async def test_redirect_chain_is_recorded(scraping: Process, db: asyncpg.Pool, site: LocalSite) -> None:
    (job_id,) = await run(scraping.port or 0, db, [spec(site.url("/r1"))])
    result = jobs_pb2.JobResult.FromString((await job_row(db, job_id))["result"]).scrape
    assert result.final_url == site.url("/static")
    assert [(r.url, r.status_code) for r in result.redirects] == [(site.url("/r1"), 301), (site.url("/r2"), 302)]


async def test_bad_pages_end_with_their_failure_class(scraping: Process, db: asyncpg.Pool, site: LocalSite) -> None:
    closed = f"http://127.0.0.1:{free_port()}/"
    cases = {
        "/missing": "http_4xx",
        "/gone": "http_4xx",
        "/error": "http_5xx",
        "/huge": "body_too_large",
        "/gzip-bomb": "body_too_large",
        "/report.pdf": "non_html",
    }
    specs = [spec(site.url(path), attempts=2 if path == "/error" else 1) for path in cases]
    specs.append(spec(site.url("/slow"), timeout=seconds(1)))
    specs.append(spec(closed))
    ids = await run(scraping.port or 0, db, specs)
    expected = [*cases.values(), "timeout", "connection_refused"]
    for job_id, error_type in zip(ids, expected, strict=True):
        row = await job_row(db, job_id)
        assert row["state"] == "dead" and row["last_error"].startswith(error_type + ":"), (job_id, row["last_error"])
    error_id = ids[list(cases).index("/error")]
    attempts = await db.fetch("SELECT error_type FROM job_attempts WHERE job_id = $1", error_id)
    assert [a["error_type"] for a in attempts] == ["http_5xx", "http_5xx"]  # retryable: tried twice


async def test_pages_the_browser_cannot_render_fail_at_once_like_over_http(
    scraping: Process, db: asyncpg.Pool, site: LocalSite
) -> None:
    cases = {"/loop": "too_many_redirects", "/download": "non_html"}
    specs = [
        spec(site.url(path), render, attempts=3, timeout=seconds(20))
        for path in cases
        for render in (jobs_pb2.RENDER_MODE_HTTP, jobs_pb2.RENDER_MODE_BROWSER)
    ]
    ids = await run(scraping.port or 0, db, specs)
    for job_id, error_type in zip(ids, [t for t in cases.values() for _ in range(2)], strict=True):
        row = await job_row(db, job_id)
        assert row["state"] == "dead" and row["last_error"].startswith(error_type + ":"), (job_id, row["last_error"])
        attempts = await db.fetch("SELECT error_type FROM job_attempts WHERE job_id = $1", job_id)
        assert [a["error_type"] for a in attempts] == [error_type]  # final: not retried


async def test_an_untrusted_certificate_is_a_tls_error(scraping: Process, db: asyncpg.Pool, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)  # a CA the worker does not trust
    secure = LocalSite(routes={"/": page(html("Secure", "hello"))}).start(tls=(pki.server_cert, pki.server_key))
    try:
        (job_id,) = await run(scraping.port or 0, db, [spec(secure.url("/"), attempts=1)])
    finally:
        secure.stop()
    row = await job_row(db, job_id)
    assert row["state"] == "dead" and row["last_error"].startswith("tls_error:"), row["last_error"]


async def test_429_is_retried_after_retry_after(scraping: Process, db: asyncpg.Pool, site: LocalSite) -> None:
    (job_id,) = await run(scraping.port or 0, db, [spec(site.url("/busy"), attempts=3)])
    row = await db.fetchrow(
        "SELECT j.state::text, j.run_at, a.finished_at, a.error_type "
        "FROM jobs j JOIN job_attempts a ON a.job_id = j.id WHERE j.id = $1",
        job_id,
    )
    assert (row["state"], row["error_type"]) == ("queued", "http_429")
    assert abs((row["run_at"] - row["finished_at"]) - dt.timedelta(seconds=120)) < dt.timedelta(seconds=1)
    await asyncio.sleep(0)
