"""The request bounds walk: which field it names, which job, and that it skips nothing it bounds."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration

from crawlfleet.common import limits
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2

TOKEN = "7f1d8a52-0a8b-4a39-9f3c-2f7c8f0b6d11"


def completed(job_id: int, result: jobs_pb2.JobResult) -> pb.CompletedJob:
    return pb.CompletedJob(job_id=job_id, lease_token=TOKEN, result=result)


def noop(job_id: int) -> pb.CompletedJob:
    return completed(job_id, jobs_pb2.JobResult(noop=jobs_pb2.NoopResult()))


def breach(message: pb.CompleteRequest | pb.EnqueueRequest | pb.LeaseRequest) -> limits.LimitExceeded:
    with pytest.raises(limits.LimitExceeded) as raised:
        limits.check(message)
    return raised.value


def test_a_request_within_bounds_passes() -> None:
    limits.check(pb.CompleteRequest(jobs=[noop(i) for i in range(1, 101)]))


def test_a_string_too_long_deep_in_a_batch_names_its_path_and_job() -> None:
    page = jobs_pb2.ScrapeResult(title="t" * 4097)
    request = pb.CompleteRequest(jobs=[noop(1), noop(2), noop(3), completed(44, jobs_pb2.JobResult(scrape=page))])
    error = breach(request)
    assert error.field == "jobs[3].result.scrape.title"
    assert error.message == "is 4097 characters; at most 4096 are allowed"
    assert error.job_id == 44


def test_a_nul_in_a_map_value_names_the_key() -> None:
    page = jobs_pb2.ScrapeResult(headers={"etag": "a\x00b"})
    error = breach(pb.CompleteRequest(jobs=[completed(7, jobs_pb2.JobResult(scrape=page))]))
    assert error.field == "jobs[0].result.scrape.headers['etag']"
    assert "NUL" in error.message
    assert error.job_id == 7


def test_too_many_items_names_the_repeated_field() -> None:
    worker = pb.WorkerInfo(worker_id="w", kinds=[f"k{i}" for i in range(33)])
    error = breach(pb.LeaseRequest(worker=worker, max_jobs=1))
    assert error.field == "worker.kinds"
    assert error.message == "has 33 items; at most 32 are allowed"
    assert error.job_id is None


def test_a_malformed_duration_or_timestamp_is_refused() -> None:
    page = jobs_pb2.ScrapeResult(response_time=Duration(seconds=1, nanos=-5))
    error = breach(pb.CompleteRequest(jobs=[completed(9, jobs_pb2.JobResult(scrape=page))]))
    assert error.field == "jobs[0].result.scrape.response_time"
    assert error.job_id == 9
    spec = jobs_pb2.JobSpec(noop=jobs_pb2.NoopSpec())
    spec.run_at.seconds = 253_402_300_800  # the year 10000
    error = breach(pb.EnqueueRequest(jobs=[spec]))
    assert error.field == "jobs[0].run_at"


def test_a_path_given_by_the_caller_comes_first() -> None:
    with pytest.raises(limits.LimitExceeded) as raised:
        limits.check(pb.WorkerInfo(worker_id="w" * 201), "worker")
    assert raised.value.field == "worker.worker_id"


def oversized_page() -> jobs_pb2.ScrapeResult:
    return jobs_pb2.ScrapeResult(
        title="t\x00" + "x" * 5000,
        main_text="kept as it is",
        links=[jobs_pb2.Link(url="https://a.example/", text="y" * 1500)],
        json_ld=["{}", "z" * 1_000_001],
        image_urls=[f"https://a.example/{n}.png" for n in range(2_500)],
        headers={"k" * 300: "v", "server": "s\x00"},
    )


def test_fit_trims_every_field_past_its_bound_so_that_the_check_passes() -> None:
    page = oversized_page()
    limits.fit(page)
    limits.check(page)
    assert page.title == "t" + "x" * 4095
    assert page.main_text == "kept as it is"
    assert page.links[0].text == "y" * 1000
    assert list(page.json_ld) == ["{}", "z" * 1_000_000]
    assert len(page.image_urls) == 2_000
    assert dict(page.headers) == {"k" * 256: "v", "server": "s"}


def test_fit_rewrites_only_what_breaks_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    fitted: list[str] = []
    real_fit_text = limits._fit_text

    def counting(text: str, chars: int) -> str:
        fitted.append(text[:1])
        return real_fit_text(text, chars)

    monkeypatch.setattr(limits, "_fit_text", counting)
    within = jobs_pb2.ScrapeResult(
        title="A page",
        links=[jobs_pb2.Link(url=f"https://a.example/{n}", text="a link") for n in range(50)],
        json_ld=['{"@type": "Product"}'],
        headers={"server": "test"},
    )
    expected = jobs_pb2.ScrapeResult()
    expected.CopyFrom(within)
    limits.fit(within)
    assert within == expected
    assert fitted == []

    limits.fit(oversized_page())
    # title, a link's text, one JSON-LD document, and the two header entries (key and value each).
    assert sorted(fitted) == sorted(["t", "y", "z", "k", "v", "s", "s"])
