"""Enqueue over gRPC: validation, atomic batches, dedupe."""

from __future__ import annotations

import asyncpg
import grpc
import pytest
from google.protobuf import timestamp_pb2

from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from tests.conftest import RunningCoordinator
from tests.helpers import error_info, noop, scrape, seconds

BAD_JOBS: list[tuple[str, jobs_pb2.JobSpec, str]] = [
    ("no kind", jobs_pb2.JobSpec(priority=1), "jobs[0].payload"),
    ("empty url", scrape(""), "jobs[0].scrape.url"),
    ("ftp url", scrape("ftp://example.com/file"), "jobs[0].scrape.url"),
    ("relative url", scrape("/just/a/path"), "jobs[0].scrape.url"),
    ("javascript url", scrape("javascript:alert(1)"), "jobs[0].scrape.url"),
    ("no host", scrape("http:///path"), "jobs[0].scrape.url"),
    ("whitespace", scrape("http://exa mple.com/"), "jobs[0].scrape.url"),
    ("bad port", scrape("http://example.com:99999/"), "jobs[0].scrape.url"),
    ("credentials", scrape("http://user:pw@example.com/"), "jobs[0].scrape.url"),
    ("huge url", scrape("http://example.com/" + "a" * 3000), "jobs[0].scrape.url"),
    ("control character", scrape("http://example.com/a\u0001b"), "jobs[0].scrape.url"),
    ("delete character", scrape("http://example.com/a\u007f"), "jobs[0].scrape.url"),
    ("escape sequence", scrape("http://example.com/\u001b[2J"), "jobs[0].scrape.url"),
    ("nul character", scrape("http://example.com/\u0000"), "jobs[0].scrape.url"),
    ("backslash", scrape("http://example.com/a\\b"), "jobs[0].scrape.url"),
    ("not an ipv4 address", scrape("http://1.2.3.4.5/"), "jobs[0].scrape.url"),
    ("negative priority", noop(priority=-1), "jobs[0].priority"),
    ("priority too high", noop(priority=101), "jobs[0].priority"),
    (
        "negative timeout",
        jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url="http://a.com", timeout=seconds(-1))),
        "jobs[0].scrape.timeout",
    ),
    (
        "unknown render",
        jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url="http://a.com", render=42)),  # type: ignore[arg-type]
        "jobs[0].scrape.render",
    ),
    (
        "coefficient below 1",
        noop(retry_policy=jobs_pb2.RetryPolicy(backoff_coefficient=0.5)),
        "jobs[0].retry_policy.backoff_coefficient",
    ),
    (
        "too many attempts",
        noop(retry_policy=jobs_pb2.RetryPolicy(maximum_attempts=5000)),
        "jobs[0].retry_policy.maximum_attempts",
    ),
    (
        "max below initial",
        noop(retry_policy=jobs_pb2.RetryPolicy(initial_interval=seconds(10), maximum_interval=seconds(1))),
        "jobs[0].retry_policy.maximum_interval",
    ),
    ("long idempotency key", noop(idempotency_key="k" * 300), "jobs[0].idempotency_key"),
    ("oversized payload", jobs_pb2.JobSpec(noop=jobs_pb2.NoopSpec(fail_message="x" * 20_000)), "jobs[0]"),
]


async def job_count(db: asyncpg.Pool) -> int:
    return int(await db.fetchval("SELECT count(*) FROM jobs"))


@pytest.mark.parametrize(("case", "spec", "field"), BAD_JOBS, ids=[c[0] for c in BAD_JOBS])
async def test_malformed_job_is_rejected_naming_the_field(
    coord: RunningCoordinator, db: asyncpg.Pool, case: str, spec: jobs_pb2.JobSpec, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[spec]))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(caught.value)
    assert info.reason == "INVALID_FIELD"
    assert info.metadata["field"] == field
    assert field in (caught.value.details() or "")
    assert await job_count(db) == 0


async def test_empty_request_is_rejected(coord: RunningCoordinator) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coord.queue.Enqueue(pb.EnqueueRequest())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).metadata["field"] == "jobs"


async def test_one_bad_job_rejects_the_whole_batch(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    batch = [scrape(f"http://example.com/{i}") for i in range(5)] + [scrape("mailto:x@example.com")]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coord.queue.Enqueue(pb.EnqueueRequest(jobs=batch))
    assert error_info(caught.value).metadata["field"] == "jobs[5].scrape.url"
    assert await job_count(db) == 0


async def test_batch_returns_ids_in_order_and_stores_every_field(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    run_at = timestamp_pb2.Timestamp(seconds=4_000_000_000)
    specs = [
        scrape("HTTP://Example.COM:80/a?b=1#frag", priority=7),
        noop(
            run_at=run_at,
            retry_policy=jobs_pb2.RetryPolicy(
                initial_interval=seconds(2), backoff_coefficient=3, maximum_interval=seconds(60), maximum_attempts=9
            ),
        ),
    ]
    response = await coord.queue.Enqueue(pb.EnqueueRequest(jobs=specs))
    ids = [j.id for j in response.jobs]
    assert all(j.created for j in response.jobs) and ids == sorted(ids)
    rows = {r["id"]: r for r in await db.fetch("SELECT * FROM jobs")}
    first, second = rows[ids[0]], rows[ids[1]]
    assert (first["kind"], first["target_url"], first["priority"]) == ("scrape", "http://example.com/a?b=1", 7)
    assert first["dedupe_key"] == "url:http://example.com/a?b=1"
    assert jobs_pb2.JobSpec.FromString(first["spec"]) == specs[0]
    assert second["kind"] == "noop" and second["target_url"] is None
    assert second["run_at"].timestamp() == 4_000_000_000
    assert (second["max_attempts"], second["retry_initial_ms"], second["retry_multiplier"], second["retry_max_ms"]) == (
        9,
        2000,
        3.0,
        60_000,
    )


async def test_live_url_dedupes_onto_the_existing_job(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    first = await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[scrape("http://example.com/page")]))
    again = await coord.queue.Enqueue(
        pb.EnqueueRequest(
            jobs=[
                scrape("http://EXAMPLE.com:80/page#top"),
                scrape("http://example.com/page"),
                scrape("http://example.com/other"),
            ]
        )
    )
    original = first.jobs[0].id
    assert [(j.id, j.created) for j in again.jobs[:2]] == [(original, False), (original, False)]
    assert again.jobs[2].created
    assert await job_count(db) == 2


async def test_a_duplicate_says_when_the_live_job_keeps_other_options(coord: RunningCoordinator) -> None:
    (first,) = (await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[scrape("http://example.com/shop")]))).jobs
    browser = scrape("http://example.com/shop")
    browser.scrape.render = jobs_pb2.RENDER_MODE_BROWSER
    answers = await coord.queue.Enqueue(
        pb.EnqueueRequest(jobs=[browser, scrape("http://EXAMPLE.com:80/shop"), scrape("http://example.com/shop")])
    )
    assert [(j.id, j.created, j.existing_spec_differs) for j in answers.jobs] == [
        (first.id, False, True),  # another render mode: not applied, and said so
        (first.id, False, False),  # another spelling of the same URL is not another option
        (first.id, False, False),
    ]
    assert not first.existing_spec_differs


async def test_idempotency_key_dedupes_any_kind(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    a = await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[noop(idempotency_key="order-17")]))
    b = await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[noop(idempotency_key="order-17")]))
    assert b.jobs[0].id == a.jobs[0].id and not b.jobs[0].created
    assert await job_count(db) == 1


async def test_finished_url_can_be_enqueued_again(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    first = await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[scrape("http://example.com/")]))
    await db.execute("UPDATE jobs SET state = 'cancelled', finished_at = now()")
    second = await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[scrape("http://example.com/")]))
    assert second.jobs[0].created and second.jobs[0].id != first.jobs[0].id
