"""ReportRobots and GetRobots over gRPC (bad input named by field, fencing by the lease and its
principal), and the skipped state wherever jobs are counted, listed, watched and purged."""

from __future__ import annotations

import grpc
import pytest

from crawlfleet.common.robots import MAX_BODY_BYTES
from crawlfleet.coordinator.politeness import Politeness
from crawlfleet.coordinator.security.auth import Role, TokenEntry
from crawlfleet.coordinator.security.settings import SecuritySettings
from crawlfleet.v1 import admin_pb2, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import error_info, lease_request, scrape, seconds

POLITE = Politeness(host_concurrency=4, host_delay_seconds=0.0, obey_robots=True)
HOST = "shop.example"
RULES = b"User-agent: *\nDisallow: /private\n"


@pytest.fixture
async def coord(start_coordinator: StartCoordinator) -> RunningCoordinator:
    return await start_coordinator(politeness=POLITE)


async def lease_fetching(coord: RunningCoordinator, *paths: str) -> pb.LeasedJob:
    """Enqueue jobs of HOST and lease the one that fetches its robots.txt."""
    specs = [scrape(f"https://{HOST}{path}") for path in paths or ("/a",)]
    await coord.queue.Enqueue(pb.EnqueueRequest(jobs=specs))
    (job,) = (await coord.queue.Lease(lease_request())).jobs
    assert job.host.name == HOST and job.host.fetch_robots
    return job


def report(job: pb.LeasedJob, **fields: object) -> pb.ReportRobotsRequest:
    request = pb.ReportRobotsRequest(job_id=job.id, lease_token=job.lease_token, host=job.host.name, status_code=200)
    for name, value in fields.items():
        if name == "crawl_delay":
            request.crawl_delay.CopyFrom(value)  # type: ignore[arg-type]
        else:
            setattr(request, name, value)
    return request


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    return raised.value


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"job_id": 0}, "job_id"),
        ({"lease_token": "not-a-token"}, "lease_token"),
        ({"host": ""}, "host"),
        ({"host": "Shop.Example"}, "host"),
        ({"host": "shop example"}, "host"),
        ({"status_code": 99}, "status_code"),
        ({"status_code": 600}, "status_code"),
        ({"status_code": 0}, "error_type"),
        ({"body": b"x" * (MAX_BODY_BYTES + 1)}, "body"),
        ({"crawl_delay": seconds(-1)}, "crawl_delay"),
        ({"error_type": "x" * 101}, "error_type"),
        ({"error_message": "nul\x00"}, "error_message"),
    ],
)
async def test_bad_reports_are_refused_naming_the_field(
    coord: RunningCoordinator, fields: dict[str, object], field: str
) -> None:
    job = await lease_fetching(coord)
    error = await refused(coord.queue.ReportRobots(report(job, **fields)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == field


async def test_get_robots_names_a_bad_host(coord: RunningCoordinator) -> None:
    error = await refused(coord.queue.GetRobots(pb.GetRobotsRequest(host="https://shop.example/")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == "host"


async def test_reported_rules_are_what_later_leases_check_against(coord: RunningCoordinator) -> None:
    before = await coord.queue.GetRobots(pb.GetRobotsRequest(host=HOST))
    assert before.state == pb.ROBOTS_STATE_UNKNOWN and not before.HasField("version")

    job = await lease_fetching(coord, "/a", "/private/b")
    answer = await coord.queue.ReportRobots(report(job, body=RULES, crawl_delay=seconds(0)))
    assert answer.state == pb.ROBOTS_STATE_RULES
    (other,) = (await coord.queue.Lease(lease_request(worker_id="w2"))).jobs
    assert not other.host.fetch_robots and other.host.robots_version == answer.version

    stored = await coord.queue.GetRobots(pb.GetRobotsRequest(host=HOST))
    assert (stored.state, stored.body, stored.version) == (pb.ROBOTS_STATE_RULES, RULES, answer.version)
    assert stored.expires_at == answer.expires_at


@pytest.mark.parametrize(
    ("status", "error_type", "state"),
    [
        (404, "", pb.ROBOTS_STATE_ALLOW_ALL),
        (410, "", pb.ROBOTS_STATE_ALLOW_ALL),
        (0, "too_many_redirects", pb.ROBOTS_STATE_ALLOW_ALL),
        (503, "", pb.ROBOTS_STATE_UNREACHABLE),
        (429, "", pb.ROBOTS_STATE_UNREACHABLE),
        (0, "connection_refused", pb.ROBOTS_STATE_UNREACHABLE),
    ],
)
async def test_what_an_answer_makes_of_the_host(
    coord: RunningCoordinator, status: int, error_type: str, state: int
) -> None:
    job = await lease_fetching(coord)
    answer = await coord.queue.ReportRobots(report(job, status_code=status, error_type=error_type))
    assert answer.state == state
    stored = await coord.queue.GetRobots(pb.GetRobotsRequest(host=HOST))
    assert (stored.state, stored.body) == (state, b"")


async def test_a_report_needs_a_live_lease_of_that_host(coord: RunningCoordinator) -> None:
    job = await lease_fetching(coord)
    for request in (
        report(job, host="other.example"),
        report(job, lease_token="00000000-0000-4000-8000-000000000000"),
    ):
        error = await refused(coord.queue.ReportRobots(request))
        assert (error.code(), error_info(error).reason) == (grpc.StatusCode.ABORTED, "LEASE_LOST")
    assert (await coord.queue.GetRobots(pb.GetRobotsRequest(host=HOST))).state == pb.ROBOTS_STATE_UNKNOWN


async def test_a_report_needs_the_principal_that_holds_the_lease(start_coordinator: StartCoordinator) -> None:
    tokens = {"fleet-a": "fleet-a-secret", "fleet-b": "fleet-b-secret"}
    entries = tuple(TokenEntry.from_token(Role.WORKER, name, token) for name, token in tokens.items())
    producer = TokenEntry.from_token(Role.PRODUCER, "alice", "alice-secret")
    coord = await start_coordinator(politeness=POLITE, security=SecuritySettings(tokens=(*entries, producer)))

    def auth(token: str) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {token}"),)

    await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[scrape(f"https://{HOST}/a")]), metadata=auth("alice-secret"))
    (job,) = (await coord.queue.Lease(lease_request(), metadata=auth(tokens["fleet-a"]))).jobs
    error = await refused(coord.queue.ReportRobots(report(job), metadata=auth(tokens["fleet-b"])))
    assert (error.code(), error_info(error).reason) == (grpc.StatusCode.ABORTED, "LEASE_LOST")
    answer = await coord.queue.ReportRobots(report(job, body=RULES), metadata=auth(tokens["fleet-a"]))
    assert answer.state == pb.ROBOTS_STATE_RULES


async def skip(coord: RunningCoordinator) -> int:
    """A job of HOST that ends skipped, as a worker skips it; its id."""
    job = await lease_fetching(coord, "/private/x")
    await coord.queue.ReportRobots(report(job, body=RULES))
    failed = await coord.queue.Fail(
        pb.FailRequest(
            job_id=job.id,
            lease_token=job.lease_token,
            error_type="robots_disallowed",
            error_message=f"robots.txt of {HOST} disallows https://{HOST}/private/x",
            retryable=False,
        )
    )
    assert failed.state == jobs_pb2.JOB_STATE_SKIPPED
    return job.id


async def test_a_skipped_job_is_finished_and_counted_but_not_dead(coord: RunningCoordinator) -> None:
    job_id = await skip(coord)
    job = (await coord.admin.GetJob(admin_pb2.GetJobRequest(job_id=job_id))).job
    assert job.state == jobs_pb2.JOB_STATE_SKIPPED and job.HasField("finished_at")
    assert job.last_error.startswith("robots_disallowed: ")
    assert [(a.outcome, a.error_type) for a in job.attempts] == [("skipped", "robots_disallowed")]

    stats = await coord.admin.GetQueueStats(admin_pb2.GetQueueStatsRequest())
    assert {s.state: s.count for s in stats.states}.get(jobs_pb2.JOB_STATE_SKIPPED) == 1
    health = await coord.admin.GetQueueHealth(admin_pb2.GetQueueHealthRequest())
    assert health.dead == 0  # nothing for operators to look at

    listed = await coord.admin.ListJobs(
        admin_pb2.ListJobsRequest(filter=admin_pb2.JobFilter(states=[jobs_pb2.JOB_STATE_SKIPPED]))
    )
    assert [j.id for j in listed.jobs] == [job_id]
    dead = await coord.admin.ListJobs(
        admin_pb2.ListJobsRequest(filter=admin_pb2.JobFilter(states=[jobs_pb2.JOB_STATE_DEAD]))
    )
    assert list(dead.jobs) == []
    requeued = await coord.admin.RequeueDeadJobs(admin_pb2.RequeueDeadJobsRequest(job_ids=[job_id]))
    assert list(requeued.requeued_job_ids) == []

    purged = await coord.admin.PurgeJobs(
        admin_pb2.PurgeJobsRequest(finished_before=seconds(0), states=[jobs_pb2.JOB_STATE_SKIPPED])
    )
    assert purged.deleted_jobs == 1


async def test_watch_reports_a_skipped_job_as_finished(coord: RunningCoordinator) -> None:
    job = await lease_fetching(coord, "/private/x")
    stream = coord.queue.WatchJobs(pb.WatchJobsRequest(job_ids=[job.id]))
    first = await stream.read()
    assert isinstance(first, pb.WatchJobsResponse) and first.remaining_count == 1
    await coord.queue.ReportRobots(report(job, body=RULES))
    await coord.queue.Fail(
        pb.FailRequest(job_id=job.id, lease_token=job.lease_token, error_type="robots_disallowed", retryable=False)
    )
    finished = await stream.read()
    assert isinstance(finished, pb.WatchJobsResponse)
    assert [(j.job_id, j.state) for j in finished.jobs] == [(job.id, jobs_pb2.JOB_STATE_SKIPPED)]
    assert finished.remaining_count == 0
    assert await stream.read() is grpc.aio.EOF  # the stream ends: nothing left to watch
