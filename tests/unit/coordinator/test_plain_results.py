"""Results with nothing to store but their bytes skip the checks and the split of a Complete."""

from __future__ import annotations

import uuid

from crawlfleet.coordinator.api.job_queue import completion
from crawlfleet.coordinator.storage.completion import PLAIN_NOOP_RESULT, plain_result
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2

TOKEN = uuid.UUID("12345678-1234-5678-1234-567812345678")
NOOP = jobs_pb2.JobResult(noop=jobs_pb2.NoopResult())


def test_a_noop_result_is_kept_as_the_bytes_it_would_encode_to() -> None:
    assert plain_result(NOOP) == NOOP.SerializeToString(deterministic=True) == PLAIN_NOOP_RESULT


def test_results_with_rows_links_or_unknown_fields_take_the_full_path() -> None:
    sitemap = jobs_pb2.JobResult(sitemap=jobs_pb2.SitemapResult())
    with_unknown = jobs_pb2.JobResult()
    with_unknown.MergeFromString(PLAIN_NOOP_RESULT + b"\xa8\x06\x01")  # field 101, varint 1
    assert with_unknown.HasField("noop")
    for result in (jobs_pb2.JobResult(scrape=jobs_pb2.ScrapeResult()), sitemap, jobs_pb2.JobResult(), with_unknown):
        assert plain_result(result) is None


def test_a_completed_noop_job_has_no_rows_to_write() -> None:
    item, rows = completion(pb.CompletedJob(job_id=5, lease_token=str(TOKEN), result=NOOP))
    assert (item.job_id, item.lease_token, item.result, rows) == (5, TOKEN, PLAIN_NOOP_RESULT, None)
