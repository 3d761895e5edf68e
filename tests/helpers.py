"""Small helpers for tests: building requests, reading error details, waiting on conditions."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

import asyncpg
import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2

from crawlfleet.common import rpc_errors
from crawlfleet.coordinator.storage.admin import AdminQueue
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2

T = TypeVar("T")

# Pairs of attempts on one URL whose lease intervals intersect; finished attempts only.
OVERLAPPING_LEASES = """
    SELECT a.target_url, a.job_id AS first_job, a.started_at AS first_start, a.finished_at AS first_end,
           b.job_id AS second_job, b.started_at AS second_start, b.finished_at AS second_end
    FROM job_attempts AS a JOIN job_attempts AS b
      ON a.target_url = b.target_url AND (a.job_id, a.lease_token) < (b.job_id, b.lease_token)
     AND a.started_at < b.finished_at AND b.started_at < a.finished_at"""


def scrape(url: str, **fields: object) -> jobs_pb2.JobSpec:
    return jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url=url), **fields)  # type: ignore[arg-type]


def noop(duration: float | None = None, **fields: object) -> jobs_pb2.JobSpec:
    spec = jobs_pb2.NoopSpec(duration=seconds(duration)) if duration is not None else jobs_pb2.NoopSpec()
    return jobs_pb2.JobSpec(noop=spec, **fields)  # type: ignore[arg-type]


def seconds(value: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(value * 1e9))
    return d


def lease_request(worker_id: str = "w1", max_jobs: int = 10, wait: float = 0.0, slots: int = 0) -> pb.LeaseRequest:
    return pb.LeaseRequest(
        worker=pb.WorkerInfo(worker_id=worker_id, host="test", version="test", slots=slots),
        max_jobs=max_jobs,
        wait=seconds(wait),
    )


def noop_result() -> jobs_pb2.JobResult:
    return jobs_pb2.JobResult(noop=jobs_pb2.NoopResult())


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo in a failed call's status details."""
    info = rpc_errors.error_info(error)
    assert info is not None, f"no ErrorInfo in the status details of {error}"
    return info


async def eventually(
    probe: Callable[[], Awaitable[T]], *, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"
) -> T:
    """Poll probe until it returns a truthy value, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def assert_counts_exact(db: asyncpg.Pool) -> None:
    """The queue's kept counts (job_counts plus unfolded deltas) equal a full count of the table."""
    kept = await AdminQueue(db).counts()
    actual = {
        (r["kind"], r["state"]): r["count"]
        for r in await db.fetch("SELECT kind, state::text, count(*) AS count FROM jobs GROUP BY kind, state")
    }
    assert kept == actual


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server on loopback answering with handler, for as long as the block runs: its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing, with `answer` for a whole response at once."""

    def answer(self, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(200)
        for name, value in {"Content-Type": content_type, **headers, "Content-Length": str(len(body))}.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass
