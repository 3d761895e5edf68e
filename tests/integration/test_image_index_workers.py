"""Two workers' image sources and the fleet's image index against a real coordinator, a real image
pool and a real HTTP server: what one worker processed and completed, the other downloads (its own
request, through its own guard) but does not process, and both report it by reference once the
coordinator holds it; a reference the coordinator no longer holds is forgotten and sent again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from crawlfleet.v1 import admin_pb2, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.worker.client import CoordinatorClient
from crawlfleet.worker.errors import CoordinatorError
from crawlfleet.worker.pipeline.egress import EgressPolicy
from crawlfleet.worker.pipeline.fetch import GuardedFetcher
from crawlfleet.worker.pipeline.image_index import FleetImageIndex
from crawlfleet.worker.pipeline.image_source import ImageSource
from crawlfleet.worker.pipeline.images import ImageOptions, ImageProcessor, ProcessedImage
from crawlfleet.worker.pipeline.images_stage import image_result
from crawlfleet.worker.reporting import image_hashes_of
from tests.conftest import RunningCoordinator
from tests.helpers import QuietHandler, lease_request, scrape, seconds, serving
from tests.integration.jobs import enqueue
from tests.site import make_image

pytestmark = pytest.mark.timeout(60)

PICTURE = make_image("PNG", color=(30, 160, 90))


class CountingProcessor(ImageProcessor):
    """The real pool, counting the images it processed."""

    processed = 0

    async def process(self, data: bytes) -> ProcessedImage:
        self.processed += 1
        return await super().process(data)


@pytest.fixture(scope="module")
def image_url() -> Iterator[tuple[str, list[str]]]:
    requests: list[str] = []

    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            requests.append(self.path)
            self.answer(PICTURE, "image/png", Cache_Control="no-store")  # every page downloads it again

    with serving(Handler) as base:
        yield f"{base}/p.png", requests


class Worker:
    """What a worker holds for images: its fetcher, pool, index and source, and its client."""

    def __init__(self, coord: RunningCoordinator, name: str) -> None:
        options = ImageOptions()
        self.name = name
        self.client = CoordinatorClient(coord.address, pb.WorkerInfo(worker_id=name), channel=coord.channel)
        self.fetcher = GuardedFetcher(
            EgressPolicy.from_settings(allow_loopback=True), user_agent="t", max_connections=4
        )
        self.processor = CountingProcessor(options, workers=1)
        self.index = FleetImageIndex(self.client.find_stored_images, options)
        self.source = ImageSource(
            self.fetcher, self.processor, max_bytes=1 << 20, timeout=10, ttl=600, cache_bytes=1 << 20, index=self.index
        )

    async def scrape_page(
        self, coord: RunningCoordinator, url: str, image_url: str
    ) -> tuple[int, jobs_pb2.ImageResult]:
        """Leases a page's job, reports its one image as the pipeline does; the job id and image."""
        await enqueue(coord, scrape(url))
        (job,) = (await coord.queue.Lease(lease_request(worker_id=self.name, max_jobs=1))).jobs
        processed = await self.source.image(image_url)
        image = image_result(image_url, processed, stored=self.index.is_stored(processed.sha256))
        page = jobs_pb2.ScrapeResult(
            final_url=url, status_code=200, rendered_with=jobs_pb2.RENDER_MODE_HTTP, images=[image]
        )
        result = jobs_pb2.JobResult(scrape=page)
        self.index.sending(job.id, result)
        try:
            await self.client.complete([pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=result)])
        except CoordinatorError as exc:
            self.index.settled(job.id, completed=False)
            missing = image_hashes_of(exc)
            self.index.forget(missing)
            self.source.forget(missing)
            raise
        self.index.settled(job.id, completed=True)
        return job.id, image

    async def aclose(self) -> None:
        await self.processor.aclose()
        await self.fetcher.aclose()


@pytest.fixture
async def workers(coord: RunningCoordinator) -> AsyncIterator[tuple[Worker, Worker]]:
    first, second = Worker(coord, "w-a"), Worker(coord, "w-b")
    yield first, second
    await first.aclose()
    await second.aclose()


async def test_an_image_is_processed_once_by_the_fleet_and_then_referenced(
    coord: RunningCoordinator, workers: tuple[Worker, Worker], image_url: tuple[str, list[str]]
) -> None:
    url, requests = image_url
    requests.clear()
    a, b = workers
    job_a1, image_a1 = await a.scrape_page(coord, "http://a.test/1", url)
    assert not image_a1.stored and image_a1.thumbnails[0].data  # nothing stored yet: carried
    job_a2, image_a2 = await a.scrape_page(coord, "http://a.test/2", url)
    assert image_a2.stored and not any(t.data for t in image_a2.thumbnails)  # taken by a Complete: referred to
    job_b1, image_b1 = await b.scrape_page(coord, "http://a.test/3", url)
    assert image_b1.stored and b.source.counts["found_stored"] == 1
    assert (a.processor.processed, b.processor.processed) == (1, 0)
    assert len(requests) == 3  # every download still made, by the worker that needed it

    shown = []
    for job_id in (job_a1, job_a2, job_b1):
        response = await coord.admin.GetJob(admin_pb2.GetJobRequest(job_id=job_id))
        shown.append(list(response.job.result.scrape.images))
    assert shown[0] == shown[1] == shown[2]
    assert shown[0][0].sha256 == image_a1.sha256 and shown[0][0].thumbnails[0].sha256


async def test_a_reference_removed_meanwhile_is_forgotten_and_sent_again(
    coord: RunningCoordinator, workers: tuple[Worker, Worker], image_url: tuple[str, list[str]]
) -> None:
    url, _ = image_url
    a, b = workers
    await a.scrape_page(coord, "http://b.test/1", url)
    await b.scrape_page(coord, "http://b.test/2", url)  # b holds the image as metadata only
    assert b.processor.processed == 0
    purged = await coord.admin.PurgeJobs(admin_pb2.PurgeJobsRequest(finished_before=seconds(0)))
    assert purged.deleted_images == 1
    with pytest.raises(CoordinatorError) as refused:
        await b.scrape_page(coord, "http://b.test/3", url)
    assert refused.value.reason == "IMAGE_NOT_STORED"
    # The next page processes and carries it.
    _, image = await b.scrape_page(coord, "http://b.test/4", url)
    assert not image.stored and image.thumbnails[0].data and b.processor.processed == 1
