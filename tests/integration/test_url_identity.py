"""One resource, one job: spellings of one URL share dedupe and per-URL exclusivity."""

from __future__ import annotations

import asyncpg

from crawlfleet.v1 import admin_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator
from tests.helpers import lease_request, noop_result, scrape

# What a hostile site wrote to get one page fetched many times at once.
SPELLINGS = [
    "http://10.0.0.1/p/3",
    "http://10.0.0.1/p/./3",
    "http://10.0.0.1/p/x/../3",
    "http://0x0a.0.0.1/p/3",
    "http://10.0.0.1/p/%33",
    "http://167772161/p/3",
    "http://012.0.0.1/p/3",
    "http://10.1/p/3",
    "HTTP://10.0.0.1:80/p/3#again",
]
NORMAL = "http://10.0.0.1/p/3"


async def test_spellings_of_one_url_dedupe_onto_one_job(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    first = await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[scrape(SPELLINGS[1])]))
    again = await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[scrape(url) for url in SPELLINGS]))
    (original,) = [j.id for j in first.jobs]
    assert first.jobs[0].created
    assert [(j.id, j.created) for j in again.jobs] == [(original, False)] * len(SPELLINGS)
    assert [tuple(r) for r in await db.fetch("SELECT target_url, dedupe_key FROM jobs")] == [(NORMAL, f"url:{NORMAL}")]
    # The job keeps the URL as its producer wrote it; the target URL is its identity.
    job = (await coord.admin.GetJob(admin_pb2.GetJobRequest(job_id=original))).job
    assert (job.spec.scrape.url, job.target_url) == (SPELLINGS[1], NORMAL)


async def test_spellings_of_one_url_are_never_leased_at_once(coord: RunningCoordinator) -> None:
    # Idempotency keys keep the jobs apart; the URL's exclusivity must still hold.
    specs = [scrape(url, idempotency_key=f"key-{i}") for i, url in enumerate(SPELLINGS[:4])]
    ids = [j.id for j in (await coord.queue.Enqueue(pb.EnqueueRequest(jobs=specs))).jobs]
    assert len(set(ids)) == 4
    for expected in ids:
        leased = (await coord.queue.Lease(lease_request(max_jobs=10))).jobs
        assert [j.id for j in leased] == [expected]
        assert list((await coord.queue.Lease(lease_request(worker_id="w2", max_jobs=10))).jobs) == []
        done = pb.CompletedJob(job_id=expected, lease_token=leased[0].lease_token, result=noop_result())
        await coord.queue.Complete(pb.CompleteRequest(jobs=[done]))
