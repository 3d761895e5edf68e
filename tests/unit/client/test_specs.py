"""What a producer passes becomes the API's messages; batches, paging and requeue loops are planned right."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import grpc
import pytest

from crawlfleet.client import InvalidArgument, JobFilter, RetryPolicy, ScrapeJob
from crawlfleet.client import calls as plan
from crawlfleet.client.specs import job_spec
from crawlfleet.v1 import admin_pb2, jobs_pb2


def test_a_scrape_job_carries_every_option() -> None:
    run_at = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    spec = ScrapeJob(
        url="https://shop.example/p/1",
        render="browser",
        idempotency_key="p1-monday",
        priority=7,
        run_at=run_at,
        retry=RetryPolicy(
            initial_interval=2, backoff_coefficient=3.0, maximum_interval=dt.timedelta(minutes=1), maximum_attempts=4
        ),
        timeout=12.5,
        skip_images=True,
        max_images=3,
    ).to_proto()
    assert spec.scrape.url == "https://shop.example/p/1" and spec.scrape.render == jobs_pb2.RENDER_MODE_BROWSER
    assert spec.idempotency_key == "p1-monday" and spec.priority == 7
    assert spec.run_at.ToDatetime(tzinfo=dt.UTC) == run_at
    assert spec.retry_policy.initial_interval.seconds == 2 and spec.retry_policy.backoff_coefficient == 3.0
    assert spec.retry_policy.maximum_interval.seconds == 60 and spec.retry_policy.maximum_attempts == 4
    assert spec.scrape.timeout.ToNanoseconds() == 12_500_000_000
    assert spec.scrape.skip_images and spec.scrape.max_images == 3


def test_unset_options_stay_unset_for_the_coordinators_defaults() -> None:
    spec = ScrapeJob(url="https://a.example/").to_proto()
    assert spec == jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url="https://a.example/"))
    assert not spec.HasField("run_at") and not spec.HasField("retry_policy")


def test_a_run_at_without_a_zone_is_local_time() -> None:
    local = dt.datetime(2030, 6, 1, 12, 0)
    spec = ScrapeJob(url="https://a.example/", run_at=local).to_proto()
    assert spec.run_at.ToDatetime(tzinfo=dt.UTC) == local.astimezone()


def test_enqueue_takes_urls_scrape_jobs_and_job_specs() -> None:
    noop = jobs_pb2.JobSpec(noop=jobs_pb2.NoopSpec())
    assert job_spec("https://a.example/").scrape.url == "https://a.example/"
    assert job_spec(noop) is noop
    with pytest.raises(TypeError):
        job_spec(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="render"):
        ScrapeJob(url="https://a.example/", render="fast").to_proto()  # type: ignore[arg-type]


def test_a_job_filter_becomes_the_api_filter() -> None:
    after = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    flt = JobFilter(
        states=["dead", "cancelled"],
        kind="scrape",
        url_prefix="https://a.example/",
        created_after=after,
        error_type="http_5xx",
    ).to_proto()
    assert list(flt.states) == [jobs_pb2.JOB_STATE_DEAD, jobs_pb2.JOB_STATE_CANCELLED]
    assert flt.kind == "scrape" and flt.url_prefix == "https://a.example/" and flt.error_type == "http_5xx"
    assert flt.created_after.ToDatetime(tzinfo=dt.UTC) == after and not flt.HasField("created_before")
    with pytest.raises(ValueError, match="unknown state"):
        JobFilter(states=["stuck"]).to_proto()
    with pytest.raises(TypeError):
        JobFilter(states="dead").to_proto()


def test_batches_read_lazily_and_know_their_offsets() -> None:
    taken: list[int] = []

    def urls() -> Iterator[str]:
        for n in range(5):
            taken.append(n)
            yield f"https://a.example/{n}"

    batches = plan.enqueue_batches(urls(), 2)
    offset, first = next(batches)
    assert offset == 0 and len(first.jobs) == 2 and taken == [0, 1]
    rest = list(batches)
    assert [(o, len(r.jobs)) for o, r in rest] == [(2, 2), (4, 1)]
    with pytest.raises(ValueError, match="batch_size"):
        next(plan.enqueue_batches(["https://a.example/"], plan.MAX_ENQUEUE_BATCH + 1))


def test_an_invalid_job_is_located_in_the_callers_input() -> None:
    error = InvalidArgument(
        "jobs[3].scrape.url: bad", field="jobs[3].scrape.url", code=grpc.StatusCode.INVALID_ARGUMENT
    )
    plan.locate(error, 2000)
    assert error.job_index == 2003
    other = InvalidArgument("jobs: empty", field="jobs")
    plan.locate(other, 10)
    assert other.job_index is None


def test_paging_stops_at_the_limit_or_the_last_page() -> None:
    paging = plan.Paging(10, limit=25)
    sizes = []
    while not paging.done:
        sizes.append(paging.page_size())
        paging.take(range(paging.page_size()), "more")
    assert sizes == [10, 10, 5] and paging.yielded == 25
    unlimited = plan.Paging(10, limit=None)
    assert unlimited.take(range(10), "next") == 10 and not unlimited.done
    assert unlimited.take(range(3), "") == 3 and unlimited.done
    assert plan.Paging(10, limit=0).done


def test_requeue_by_filter_ends_on_a_short_batch_or_a_job_seen_twice() -> None:
    run = plan.RequeueByFilter(JobFilter(kind="scrape"), batch_size=2)
    assert run.request.limit == 2 and run.request.HasField("filter")
    assert run.absorb(admin_pb2.RequeueDeadJobsResponse(requeued_job_ids=[1, 2]))
    # Job 2 died again and came back: requeued once only, and the loop ends.
    assert not run.absorb(admin_pb2.RequeueDeadJobsResponse(requeued_job_ids=[2, 3]))
    assert run.requeued == [1, 2, 3]
    short = plan.RequeueByFilter(JobFilter(), batch_size=2)
    assert not short.absorb(admin_pb2.RequeueDeadJobsResponse(requeued_job_ids=[5]))


def test_requeue_by_ids_sends_each_id_once_in_bounded_requests() -> None:
    requests = list(plan.requeue_id_requests([*range(1, plan.MAX_REQUEUE_BATCH + 2), 1]))
    assert [len(r.job_ids) for r in requests] == [plan.MAX_REQUEUE_BATCH, 1]
