"""Lease tokens and job ids as a Complete, Fail or Heartbeat gives them."""

from __future__ import annotations

import uuid

import pytest

from crawlfleet.coordinator.api import convert
from crawlfleet.coordinator.api.job_queue import completion
from crawlfleet.coordinator.errors import InvalidArgument
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2

TOKEN = uuid.UUID("7f1d8a52-0a8b-4a39-9f3c-2f7c8f0b6d11")


@pytest.mark.parametrize("spelling", [str(TOKEN), str(TOKEN).upper(), TOKEN.hex])
def test_a_lease_token_is_read_in_the_forms_lease_gives(spelling: str) -> None:
    token = convert.lease_token(spelling, "lease_token")
    assert token == TOKEN and isinstance(token, uuid.UUID) and hash(token) == hash(TOKEN)


@pytest.mark.parametrize(
    "spelling", ["", "not-a-token", str(TOKEN)[:-1], f"{{{TOKEN}}}", f"urn:uuid:{TOKEN}", f" {TOKEN}"]
)
def test_anything_else_is_refused_naming_the_field(spelling: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        convert.lease_token(spelling, "jobs[2].lease_token")
    assert raised.value.field == "jobs[2].lease_token"


def test_a_completed_jobs_errors_name_its_fields_and_the_job_when_its_result_is_at_fault() -> None:
    noop = jobs_pb2.JobResult(noop=jobs_pb2.NoopResult())
    empty_page = jobs_pb2.JobResult(scrape=jobs_pb2.ScrapeResult())
    item, rows = completion(pb.CompletedJob(job_id=5, lease_token=str(TOKEN), result=noop))
    assert (item.job_id, item.lease_token, item.result) == (5, TOKEN, noop.SerializeToString(deterministic=True))
    assert not rows
    for job, field, job_id in (
        (pb.CompletedJob(job_id=0, lease_token=str(TOKEN), result=noop), "jobs[1].job_id", None),
        (pb.CompletedJob(job_id=5, lease_token="x", result=noop), "jobs[1].lease_token", None),
        (pb.CompletedJob(job_id=5, lease_token=str(TOKEN)), "jobs[1].result", None),
        (
            pb.CompletedJob(job_id=5, lease_token=str(TOKEN), result=empty_page),
            "jobs[1].result.scrape.status_code",
            "5",
        ),
    ):
        with pytest.raises(InvalidArgument) as raised:
            try:
                completion(job)
            except InvalidArgument as exc:
                raise exc.within("jobs[1]") from None
        assert raised.value.field == field
        assert raised.value.metadata.get("job_id") == job_id
