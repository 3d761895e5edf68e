"""The egress guard end to end: a worker in a network namespace with no route out is asked for
metadata, private, loopback and rebinding-style destinations, directly, through redirects, as
images and from inside the browser. Every one must be refused as blocked_destination.

Nothing here can leak even with a broken guard: inside the namespace, 169.254.169.254 and
10.0.0.1 have no route, and loopback is the namespace's own, where nothing listens.
"""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import grpc
import pytest

from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import job_queue_pb2_grpc, jobs_pb2
from tests import netns
from tests.e2e.processes import Fleet
from tests.helpers import eventually, seconds
from tests.site import PHOTO_PNG, LocalSite, blob, html, page, redirect

pytestmark = pytest.mark.e2e
BLOCKED_URLS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/",
    "http://[::1]:8080/",
    "http://loopback.test:8080/",  # a host name that resolves to loopback (in the namespace's hosts)
]


@pytest.fixture(scope="module")
def namespace() -> Iterator[netns.Namespace]:
    missing = netns.available()
    if missing is not None:
        pytest.skip(f"egress tests need a network namespace: {missing}")
    created = netns.Namespace.create(1, {"loopback.test": "127.0.0.1"})
    yield created
    created.delete()


@pytest.fixture(scope="module")
def site(namespace: netns.Namespace) -> Iterator[LocalSite]:
    served = LocalSite()
    images = "".join(f"<img src='{url}pic.png'>" for url in BLOCKED_URLS) + "<img src='/photo.png'>"
    links = "".join(f"<a href='{url}'>x</a>" for url in BLOCKED_URLS)
    served.routes.update(
        {
            "/leaky": page(html("Leaky", f"<p>Images everywhere.</p>{images}{links}")),
            "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/"),
            "/photo.png": blob(PHOTO_PNG, "image/png"),
        }
    )
    served.start(namespace.host_address)
    yield served
    served.stop()


def spec(url: str, render: int = jobs_pb2.RENDER_MODE_HTTP) -> jobs_pb2.JobSpec:
    return jobs_pb2.JobSpec(
        scrape=jobs_pb2.ScrapeSpec(url=url, render=render, timeout=seconds(30)),  # type: ignore[arg-type]
        retry_policy=jobs_pb2.RetryPolicy(maximum_attempts=1),
        idempotency_key=f"{url}#{render}",
    )


async def test_no_fetch_reaches_a_blocked_destination(
    fleet: Fleet, db_dsn: str, db: asyncpg.Pool, namespace: netns.Namespace, site: LocalSite
) -> None:
    # Listening beyond loopback without tokens: the test network is private to this test.
    coordinator = await fleet.coordinator("coordinator", db_dsn, "--insecure-no-auth", host=namespace.host_address)
    assert coordinator.port
    fleet.worker(
        "fenced-in",
        coordinator.port,
        "--egress-allow",
        f"{namespace.host_address}/32",
        coordinator_host=namespace.host_address,
        prefix=namespace.command(),
        allow_loopback=False,
    )
    specs = [spec(url) for url in BLOCKED_URLS]
    specs += [spec(site.url("/to-metadata")), spec("http://no-such-host.invalid/")]
    specs += [spec(site.url("/leaky")), spec(site.url("/leaky"), jobs_pb2.RENDER_MODE_BROWSER)]
    async with grpc.aio.insecure_channel(f"{namespace.host_address}:{coordinator.port}") as channel:
        response = await job_queue_pb2_grpc.JobQueueStub(channel).Enqueue(pb.EnqueueRequest(jobs=specs))
    ids = [j.id for j in response.jobs]

    async def finished() -> bool:
        count = await db.fetchval(
            "SELECT count(*) FROM jobs WHERE id = ANY($1) AND state IN ('succeeded', 'dead')", ids
        )
        return bool(count == len(ids))

    await eventually(finished, timeout=90, interval=0.1, what="every egress job to finish")
    rows = {r["id"]: r for r in await db.fetch("SELECT id, state::text, last_error FROM jobs WHERE id = ANY($1)", ids)}
    for job_id in ids[: len(BLOCKED_URLS) + 1]:
        assert rows[job_id]["state"] == "dead"
        assert rows[job_id]["last_error"].startswith("blocked_destination:"), rows[job_id]["last_error"]
    dns_id = ids[len(BLOCKED_URLS) + 1]
    assert rows[dns_id]["last_error"].startswith("dns_error:"), rows[dns_id]["last_error"]

    for leaky_id in ids[-2:]:
        assert rows[leaky_id]["state"] == "succeeded", rows[leaky_id]["last_error"]
        images = await db.fetch(
            "SELECT url, error_type, image_sha256 FROM page_images WHERE job_id = $1 ORDER BY position", leaky_id
        )
        by_url = {r["url"]: r for r in images}
        for url in BLOCKED_URLS:
            assert by_url[url + "pic.png"]["error_type"] == "blocked_destination"
        assert by_url[site.url("/photo.png")]["image_sha256"] is not None
