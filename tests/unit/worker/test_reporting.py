from __future__ import annotations

import asyncio
from collections.abc import Sequence

from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.worker.backoff import Backoff
from crawlfleet.worker.errors import JobError
from crawlfleet.worker.reporting import (
    MAX_FAULTS_IN_A_ROW,
    CompleteBatcher,
    GaveUp,
    Settled,
    fail_request,
    internal_failure,
    release_request,
    report_fail,
    retry_transient,
)
from tests.unit.worker.fakes import (
    FakeCompleteSender,
    completed,
    fault,
    held,
    lease_lost,
    rejected,
    unavailable,
)


class Recorder:
    def __init__(self) -> None:
        self.delays: list[float] = []
        self.settled: dict[int, Settled] = {}

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)  # no real waiting in unit tests

    def on_settled(self, job_id: int, outcome: Settled) -> None:
        assert job_id not in self.settled, "settled twice"
        self.settled[job_id] = outcome


def batcher(sender: FakeCompleteSender, rec: Recorder, *, max_batch: int = 100, flush: float = 60.0) -> CompleteBatcher:
    return CompleteBatcher(
        sender, max_batch=max_batch, flush_interval=flush, on_settled=rec.on_settled, sleep=rec.sleep
    )


async def drain(b: CompleteBatcher) -> None:
    b.close()
    await asyncio.wait_for(b.run(), 5)


async def test_full_batches_go_at_once_and_close_flushes_the_rest() -> None:
    sender, rec = FakeCompleteSender(), Recorder()
    b = batcher(sender, rec, max_batch=2)  # the flush interval (60 s) never passes in this test
    for job_id in range(1, 6):
        b.submit(completed(job_id))
    await drain(b)
    assert sender.calls == [[1, 2], [3, 4], [5]]
    assert rec.settled == {i: "completed" for i in range(1, 6)}


async def test_flush_interval_sends_a_partial_batch() -> None:
    sender, rec = FakeCompleteSender(), Recorder()
    b = batcher(sender, rec, max_batch=100, flush=0.0)
    settled = asyncio.Event()
    b._on_settled = lambda job_id, outcome: settled.set() if job_id == 8 else None
    runner = asyncio.create_task(b.run())
    b.submit(completed(7))
    b.submit(completed(8))
    await asyncio.wait_for(settled.wait(), 5)  # sent without close(): the interval flushed it
    assert sender.calls == [[7, 8]]
    await drain(b)
    await runner


async def test_lost_jobs_are_dropped_and_the_rest_resent() -> None:
    sender, rec = FakeCompleteSender([lease_lost("2"), None]), Recorder()
    b = batcher(sender, rec)
    for job_id in (1, 2, 3):
        b.submit(completed(job_id))
    await drain(b)
    assert sender.calls == [[1, 2, 3], [1, 3]]
    assert rec.settled == {1: "completed", 2: "lost", 3: "completed"}


async def test_lease_lost_without_ids_is_resolved_one_by_one() -> None:
    sender, rec = FakeCompleteSender([lease_lost(None), None, lease_lost(None), None]), Recorder()
    b = batcher(sender, rec)
    for job_id in (1, 2, 3):
        b.submit(completed(job_id))
    await drain(b)
    assert sender.calls == [[1, 2, 3], [1], [2], [3]]
    assert rec.settled == {1: "completed", 2: "lost", 3: "completed"}


async def test_transient_errors_are_retried_with_backoff() -> None:
    sender, rec = FakeCompleteSender([unavailable(), unavailable(), None]), Recorder()
    b = batcher(sender, rec)
    b.submit(completed(1))
    await drain(b)
    assert sender.calls == [[1], [1], [1]]
    assert len(rec.delays) == 2
    assert rec.settled == {1: "completed"}


async def test_a_rejected_job_does_not_sink_the_batch() -> None:
    sender, rec = FakeCompleteSender([rejected(), None, rejected()]), Recorder()
    b = batcher(sender, rec)
    b.submit(completed(1))
    b.submit(completed(2))
    await drain(b)
    assert sender.calls == [[1, 2], [1], [2]]
    assert rec.settled == {1: "completed", 2: "rejected"}


async def test_discarded_jobs_are_not_reported() -> None:
    sender, rec = FakeCompleteSender(), Recorder()
    b = batcher(sender, rec)
    b.submit(completed(1))
    b.submit(completed(2))
    b.discard(1)
    await drain(b)
    assert sender.calls == [[2]]
    assert rec.settled == {2: "completed"}


async def test_discard_during_an_outage_stops_the_retries() -> None:
    rec = Recorder()
    sender = FakeCompleteSender([unavailable()] * 1000)
    b = batcher(sender, rec)

    async def sleep_then_discard(delay: float) -> None:
        rec.delays.append(delay)
        if len(rec.delays) == 3:
            b.discard(1)  # e.g. the lease self-fenced while the coordinator was down

    b._sleep = sleep_then_discard
    b.submit(completed(1))
    await drain(b)
    assert len(sender.calls) == 3
    assert rec.settled == {}


async def test_retry_transient_gives_up_when_told() -> None:
    attempts = 0

    async def op() -> None:
        nonlocal attempts
        attempts += 1
        raise unavailable()

    rec = Recorder()
    try:
        await retry_transient(op, keep_trying=lambda: attempts < 4, backoff=Backoff(), sleep=rec.sleep)
    except GaveUp:
        pass
    else:
        raise AssertionError("expected GaveUp")
    assert attempts == 4


class FakeFail:
    def __init__(self, script: list[Exception | None]) -> None:
        self.script = script
        self.requests: list[pb.FailRequest] = []

    async def fail(self, request: pb.FailRequest) -> pb.FailResponse:
        self.requests.append(request)
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        return pb.FailResponse()


async def test_report_fail_retries_then_succeeds() -> None:
    client, rec = FakeFail([unavailable(), None]), Recorder()
    lease = held(5)
    assert await report_fail(client, lease, release_request(lease.job), sleep=rec.sleep)
    assert len(client.requests) == 2
    assert client.requests[0].release and client.requests[0].error_type == "shutdown"


async def test_report_fail_stops_on_lease_lost_and_after_expiry() -> None:
    client, rec = FakeFail([lease_lost("5")]), Recorder()
    lease = held(5)
    assert not await report_fail(client, lease, release_request(lease.job), sleep=rec.sleep)
    assert len(client.requests) == 1

    client = FakeFail([unavailable()] * 10)
    expired = held(6, deadline=0.0)  # monotonic time 0 is long past
    assert not await report_fail(client, expired, release_request(expired.job), sleep=rec.sleep)
    assert client.requests == []


def test_fail_requests_carry_the_job_error() -> None:
    job = held(9).job
    request = fail_request(job, JobError("slow down", error_type="http_429", retryable=True, retry_after=1.5))
    assert (request.job_id, request.lease_token, request.error_type) == (9, "tok-9", "http_429")
    assert request.retryable and not request.release
    assert request.retry_after.ToNanoseconds() == 1_500_000_000
    assert not fail_request(job, JobError("x", error_type="y", retryable=False)).HasField("retry_after")
    internal = internal_failure(job, KeyError("k"))
    assert internal.error_type == "internal" and internal.retryable
    assert "KeyError" in internal.error_message


async def test_a_batch_of_one_goes_without_waiting_for_the_flush_interval() -> None:
    sender, rec = FakeCompleteSender(), Recorder()
    b = batcher(sender, rec, max_batch=1)  # the flush interval (60 s) never passes in this test
    settled = asyncio.Event()
    b._on_settled = lambda job_id, outcome: settled.set()
    runner = asyncio.create_task(b.run())
    b.submit(completed(1))
    await asyncio.wait_for(settled.wait(), 5)
    assert sender.calls == [[1]]
    await drain(b)
    await runner


async def test_batches_are_bounded_by_bytes_too_and_one_large_job_still_goes() -> None:
    sender, rec = FakeCompleteSender(), Recorder()
    one_job = completed(1).ByteSize()
    b = CompleteBatcher(
        sender,
        max_batch=100,
        max_batch_bytes=2 * one_job,  # two jobs of the usual size per call
        flush_interval=60.0,
        on_settled=rec.on_settled,
        sleep=rec.sleep,
    )
    large = completed(3)
    large.result.scrape.main_text = "x" * (3 * one_job)
    for job in (completed(1), completed(2), large, completed(4), completed(5)):
        b.submit(job)
    await drain(b)
    assert sender.calls == [[1, 2], [3], [4, 5]]
    assert rec.settled == {i: "completed" for i in range(1, 6)}


class PoisonedSender(FakeCompleteSender):
    """Fails every Complete holding the poisoned job the way a coordinator bug would (INTERNAL)."""

    def __init__(self, poisoned: int) -> None:
        super().__init__()
        self.poisoned = poisoned

    async def complete(self, jobs: Sequence[pb.CompletedJob]) -> None:
        self.calls.append([job.job_id for job in jobs])
        if any(job.job_id == self.poisoned for job in jobs):
            raise fault()


async def test_a_result_that_keeps_failing_the_coordinator_is_refused_and_the_others_complete() -> None:
    sender, rec = PoisonedSender(poisoned=2), Recorder()
    b = batcher(sender, rec)
    for job_id in (1, 2, 3):
        b.submit(completed(job_id))
    await drain(b)
    assert rec.settled == {1: "completed", 2: "rejected", 3: "completed"}
    # The batch and then the poisoned job alone were each tried a bounded number of times.
    assert sender.calls.count([1, 2, 3]) == MAX_FAULTS_IN_A_ROW
    assert sender.calls.count([2]) == MAX_FAULTS_IN_A_ROW


async def test_outages_between_faults_do_not_count_towards_the_bound() -> None:
    script = [fault(), fault(), unavailable(), fault(), fault(), None]
    sender, rec = FakeCompleteSender(script), Recorder()
    b = batcher(sender, rec)
    b.submit(completed(1))
    await drain(b)
    assert rec.settled == {1: "completed"}
    assert len(sender.calls) == len(script)


async def test_on_completed_hears_of_each_acknowledged_batch_once_without_lost_or_discarded_jobs() -> None:
    sender, rec = FakeCompleteSender([lease_lost("2"), None, None]), Recorder()
    batches: list[list[int]] = []
    b = CompleteBatcher(
        sender,
        max_batch=3,
        flush_interval=60.0,
        on_settled=rec.on_settled,
        on_completed=batches.append,
        sleep=rec.sleep,
    )
    for job_id in (1, 2, 3, 4):
        b.submit(completed(job_id))
    b.discard(4)
    await drain(b)
    assert batches == [[1, 3]]
    assert rec.settled == {2: "lost"}  # per job only for what did not complete
