"""Untrusted strings (error messages, URLs, worker ids) reach the operator's terminal escaped: a
producer or a hostile site cannot send the CLI's user terminal escape codes."""

from __future__ import annotations

from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator
from tests.helpers import lease_request, scrape
from tests.integration.jobs import enqueue
from tests.integration.test_cli import cli

# Set the window title, clear the screen, then a C1 CSI (one byte) that recolours.
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x9b31mboom\rforged line"
WORKER = "w\x1b[5m"


async def _dead_job(coord: RunningCoordinator) -> int:
    (job_id,) = await enqueue(coord, scrape("https://hostile.example/"))
    (job,) = (await coord.queue.Lease(lease_request(worker_id=WORKER))).jobs
    await coord.queue.Fail(
        pb.FailRequest(
            job_id=job.id, lease_token=job.lease_token, error_type="http_4xx", error_message=HOSTILE, retryable=False
        )
    )
    return job_id


def _assert_inert(text: str) -> None:
    for raw in ("\x1b", "\x07", "\x9b", "\r"):
        assert raw not in text, f"{raw!r} printed raw in {text!r}"


async def test_show_and_dead_list_escape_control_characters(coord: RunningCoordinator) -> None:
    job_id = await _dead_job(coord)
    shown = await cli(coord, "jobs", "show", str(job_id))
    assert shown.code == 0, shown.err
    _assert_inert(shown.out)
    assert "\\x1b]0;pwned\\x07" in shown.out  # shown, as an escape
    assert "w\\x1b[5m" in shown.out  # the attempt's worker id
    listed = await cli(coord, "dead", "list")
    assert listed.code == 0, listed.err
    _assert_inert(listed.out)
    assert str(job_id) in listed.out
    as_json = await cli(coord, "jobs", "show", str(job_id), "--json")
    _assert_inert(as_json.out)
    assert as_json.json()["attempts"][0]["error_message"] == HOSTILE  # JSON escapes it; the value is intact
