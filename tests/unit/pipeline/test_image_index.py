"""The worker's view of the fleet's image index, without sockets: lookups of concurrent jobs share
one call, a stored image is used only with the thumbnails this worker makes, Completes the
coordinator took teach it what is stored, and a coordinator without the call turns it off."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc

from crawlfleet.common.rpc_errors import ErrorDetails
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.errors import CoordinatorError, CoordinatorUnavailable
from crawlfleet.worker.pipeline.image_index import FleetImageIndex
from crawlfleet.worker.pipeline.images import ImageOptions

A, B, C = "a" * 64, "b" * 64, "c" * 64


def stored(sha256: str, *sides: int, width: int = 800, height: int = 600) -> jobs_pb2.ImageResult:
    return jobs_pb2.ImageResult(
        sha256=sha256,
        format="JPEG",
        width=width,
        height=height,
        byte_size=1000,
        perceptual_hash="0" * 16,
        stored=True,
        thumbnails=[
            jobs_pb2.Thumbnail(max_side=side, width=side, height=side, format="WEBP", sha256=f"{side:064x}")
            for side in sides
        ],
    )


class Coordinator:
    """Answers FindStoredImages from `images`, or raises `error`; records every call."""

    def __init__(self, *images: jobs_pb2.ImageResult, error: CoordinatorError | None = None) -> None:
        self.images = {image.sha256: image for image in images}
        self.calls: list[list[str]] = []
        self.error = error

    async def find(self, sha256s: Sequence[str]) -> list[jobs_pb2.ImageResult]:
        self.calls.append(list(sha256s))
        if self.error is not None:
            raise self.error
        return [self.images[sha] for sha in sha256s if sha in self.images]


def result(*images: jobs_pb2.ImageResult) -> jobs_pb2.JobResult:
    return jobs_pb2.JobResult(scrape=jobs_pb2.ScrapeResult(images=images))


async def test_concurrent_lookups_share_one_call_and_only_matching_thumbnails_count() -> None:
    coordinator = Coordinator(stored(A, 512, 128), stored(B, 512))  # B lacks the 128 one
    index = FleetImageIndex(coordinator.find, ImageOptions(thumbnail_sizes=(128, 512)))
    found_a, found_b, found_c = await asyncio.gather(index.find(A), index.find(B), index.find(C))
    assert coordinator.calls == [[A, B, C]]
    assert found_a is not None and [t.max_side for t in found_a.thumbnails] == [512, 128]
    assert all(t.data == b"" for t in found_a.thumbnails)
    assert found_b is None and found_c is None
    assert index.is_stored(A) and not index.is_stored(B)
    assert index.counts == {"found": 1, "missed": 2}


async def test_an_image_smaller_than_a_size_uses_its_one_unresized_thumbnail() -> None:
    # A 100-pixel image: its 512 and 128 thumbnails are the same bytes, stored once (as 512).
    coordinator = Coordinator(stored(A, 512, width=100, height=80))
    index = FleetImageIndex(coordinator.find, ImageOptions(thumbnail_sizes=(128, 512)))
    found = await index.find(A)
    assert found is not None and [t.max_side for t in found.thumbnails] == [512, 128]
    assert found.thumbnails[0].sha256 == found.thumbnails[1].sha256


async def test_completes_the_coordinator_took_teach_what_is_stored_until_forgotten() -> None:
    index = FleetImageIndex(Coordinator().find, ImageOptions())
    carried = jobs_pb2.ImageResult(sha256=A, thumbnails=[jobs_pb2.Thumbnail(data=b"x")])
    assert await index.find(B) is None  # the coordinator has the index
    index.sending(1, result(carried))
    index.sending(2, result(jobs_pb2.ImageResult(sha256=C, thumbnails=[jobs_pb2.Thumbnail(data=b"x")])))
    assert not index.is_stored(A)  # not before the coordinator took it
    index.settled(1, completed=True)
    index.settled(2, completed=False)
    assert index.is_stored(A) and not index.is_stored(C)
    index.forget([A])
    assert not index.is_stored(A)


async def test_a_coordinator_without_the_call_turns_references_off() -> None:
    unimplemented = CoordinatorError(grpc.StatusCode.UNIMPLEMENTED, "no such method", ErrorDetails())
    coordinator = Coordinator(error=unimplemented)
    index = FleetImageIndex(coordinator.find, ImageOptions())
    assert await index.find(A) is None
    assert not index.enabled
    index.sending(1, result(jobs_pb2.ImageResult(sha256=A, thumbnails=[jobs_pb2.Thumbnail(data=b"x")])))
    index.settled(1, completed=True)
    assert not index.is_stored(A)  # an old coordinator would refuse a reference
    assert await index.find(B) is None and len(coordinator.calls) == 1  # not asked again


async def test_a_failed_lookup_processes_here_and_asks_again_next_time() -> None:
    down = CoordinatorUnavailable(grpc.StatusCode.UNAVAILABLE, "down", ErrorDetails())
    coordinator = Coordinator(stored(A, 512, 128), error=down)
    index = FleetImageIndex(coordinator.find, ImageOptions())
    assert await index.find(A) is None
    coordinator.error = None
    assert await index.find(A) is not None and index.enabled
