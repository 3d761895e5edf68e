"""The ``crawlfleet`` CLI against an in-process coordinator: ``main(argv)`` runs in a thread (it makes
blocking gRPC calls while the coordinator serves on the test's event loop) with its streams captured."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import duration_pb2

from crawlfleet.cli.commands.enqueue import parse_lines
from crawlfleet.cli.errors import UsageError
from crawlfleet.cli.main import main
from crawlfleet.cli.render import id_ranges, parse_duration
from crawlfleet.coordinator.security.auth import Role, TokenEntry
from crawlfleet.coordinator.security.settings import SecuritySettings
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from tests.certs import make_pki
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.e2e.processes import free_port
from tests.helpers import eventually, lease_request, noop, scrape
from tests.integration.jobs import complete, enqueue, fail, get_job, make_dead, make_succeeded


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


async def cli(coord: RunningCoordinator | str, *args: str, stdin: str = "") -> Run:
    address = coord if isinstance(coord, str) else coord.address
    out, err = io.StringIO(), io.StringIO()
    argv = ["--coordinator", address, *args]
    code = await asyncio.to_thread(main, argv, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return Run(code, out.getvalue(), err.getvalue())


def test_durations_ranges_and_input_lines() -> None:
    assert parse_duration("90") == 90 and parse_duration("1h30m") == 5400 and parse_duration("7d") == 7 * 86400
    assert parse_duration("500ms") == 0.5
    with pytest.raises(UsageError):
        parse_duration("soon")
    assert id_ranges([5, 1, 2, 3, 9, 10]) == "1-3, 5, 9-10"
    items = parse_lines(["# urls", "", "  https://a.example/  ", '{"noop": {}, "priority": 4}'], "stdin")
    assert [i.origin for i in items] == ["stdin line 3", "stdin line 4"]
    assert items[0].spec.scrape.url == "https://a.example/" and items[1].spec.priority == 4


async def test_enqueue_from_arguments_dedupes_live_jobs(coord: RunningCoordinator) -> None:
    first = await cli(coord, "--json", "enqueue", "https://a.example/", "https://b.example/", "--render", "auto")
    assert first.code == 0, first.err
    assert first.json()["created"] == 2 and first.json()["deduplicated"] == 0
    again = await cli(coord, "enqueue", "https://a.example/", "--priority", "5")
    assert again.code == 0
    assert "1 job(s): 0 created, 1 deduplicated" in again.out
    ids = [j["id"] for j in first.json()["jobs"]]
    assert f"already queued or running: {ids[0]}" in again.out
    job = await get_job(coord, ids[0])
    assert job.spec.scrape.render == jobs_pb2.RENDER_MODE_AUTO


async def test_enqueue_from_stdin_with_comments_json_lines_and_batches(coord: RunningCoordinator) -> None:
    lines = [
        "# a comment, then a blank line",
        "",
        "https://shop.example/1",
        '{"scrape": {"url": "https://shop.example/2", "render": "RENDER_MODE_BROWSER"}, "priority": 9}',
        "https://shop.example/3",
    ]
    run = await cli(
        coord, "enqueue", "-", "--priority", "3", "--max-attempts", "2", "--batch", "2", stdin="\n".join(lines)
    )
    assert run.code == 0, run.err
    assert "enqueued 3 job(s): 3 created, 0 deduplicated" in run.out
    listed = await cli(coord, "--json", "jobs", "list", "--url-prefix", "https://shop.example/")
    jobs = {j["target_url"]: j for j in listed.json()["jobs"]}
    assert set(jobs) == {f"https://shop.example/{n}" for n in (1, 2, 3)}
    assert jobs["https://shop.example/1"]["spec"]["priority"] == 3
    assert jobs["https://shop.example/2"]["spec"]["priority"] == 9  # the JSON line's own value wins
    assert jobs["https://shop.example/2"]["spec"]["scrape"]["render"] == "RENDER_MODE_BROWSER"
    assert jobs["https://shop.example/3"]["max_attempts"] == 2
    noop = await cli(coord, "--json", "enqueue", "--kind", "noop", "--count", "3", "--duration", "10ms")
    assert noop.json()["created"] == 3


async def test_idempotency_keys_make_separate_jobs_of_one_url(coord: RunningCoordinator) -> None:
    first = await cli(coord, "--json", "enqueue", "https://same.example/", "--idempotency-key", "monday")
    second = await cli(coord, "--json", "enqueue", "https://same.example/", "--idempotency-key", "tuesday")
    assert first.code == 0 and second.code == 0, first.err + second.err
    assert first.json()["created"] == 1 and second.json()["created"] == 1
    assert first.json()["jobs"][0]["id"] != second.json()["jobs"][0]["id"]
    stored = await get_job(coord, second.json()["jobs"][0]["id"])
    assert stored.spec.idempotency_key == "tuesday"
    lines = "https://same.example/\twednesday\nhttps://same.example/ thursday\nhttps://same.example/\tmonday\n"
    keyed = await cli(coord, "--json", "enqueue", "-", "--key-from-line", stdin=lines)
    assert keyed.code == 0, keyed.err
    assert [j["created"] for j in keyed.json()["jobs"]] == [True, True, False]
    assert keyed.json()["jobs"][2]["id"] == first.json()["jobs"][0]["id"]  # monday is still live
    many = await cli(coord, "enqueue", "https://a.example/", "https://b.example/", "--idempotency-key", "k")
    assert many.code == 2 and "--key-from-line" in many.err
    missing = await cli(coord, "enqueue", "-", "--key-from-line", stdin="https://a.example/\tk1\nhttps://b.example/\n")
    assert missing.code == 2 and "stdin line 2: no key after the URL" in missing.err
    items = parse_lines(
        ["https://c.example/\t key with spaces ", '{"noop": {}, "idempotencyKey": "own"}'], "f", keyed=True
    )
    assert [i.spec.idempotency_key for i in items] == ["key with spaces", "own"]
    assert items[0].spec.scrape.url == "https://c.example/"


async def test_bad_url_names_the_field_and_the_input(coord: RunningCoordinator) -> None:
    run = await cli(coord, "enqueue", "https://ok.example/", "ftp://nope.example/")
    assert run.code == 1
    assert "jobs[1].scrape.url" in run.err and "argument 2" in run.err and "nothing was enqueued" in run.err
    assert (await cli(coord, "--json", "stats")).json()["states"]["queued"] == 0
    bad_json = await cli(coord, "enqueue", "-", stdin='{"scrape": {"uri": "x"}}\n')
    assert bad_json.code == 2 and "stdin line 1" in bad_json.err


async def test_unreachable_coordinator_exits_5_and_says_what_to_do() -> None:
    run = await cli(f"127.0.0.1:{free_port()}", "stats")
    assert run.code == 5
    assert "cannot reach the coordinator at 127.0.0.1:" in run.err
    assert "--coordinator / CRAWLFLEET_COORDINATOR" in run.err


async def test_tokens_and_tls(start_coordinator: StartCoordinator, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    tokens = tuple(TokenEntry.from_token(role, f"cli-{role}", f"{role}-secret") for role in (Role.PRODUCER, Role.ADMIN))
    coord = await start_coordinator(
        security=SecuritySettings(tokens=tokens, tls_cert=pki.server_cert, tls_key=pki.server_key)
    )
    tls = ["--tls-ca", str(pki.ca)]
    anonymous = await cli(coord, *tls, "stats")
    assert anonymous.code == 5 and "set --token or CRAWLFLEET_TOKEN" in anonymous.err
    producer = await cli(coord, *tls, "--token", "producer-secret", "stats")
    assert producer.code == 5 and "admin role" in producer.err
    token_file = tmp_path / "token"
    token_file.write_text("admin-secret\n")
    admin = await cli(coord, *tls, "--token-file", str(token_file), "stats", "--json")
    assert admin.code == 0, admin.err
    plain = await cli(coord, "--token", "admin-secret", "stats")
    assert plain.code == 5 and "cannot reach the coordinator" in plain.err and "--tls-ca" in plain.err


async def test_stats_health_and_workers(coord: RunningCoordinator) -> None:
    await enqueue(coord, scrape("https://a.example/"), scrape("https://b.example/"), noop())
    stats = await cli(coord, "stats", "--json")  # global options may follow the command
    assert stats.code == 0
    assert stats.json()["states"] == {"queued": 3, "leased": 0, "succeeded": 0, "dead": 0, "cancelled": 0, "skipped": 0}
    assert stats.json()["kinds"]["scrape"]["queued"] == 2 and stats.json()["kinds"]["noop"]["queued"] == 1
    table = await cli(coord, "stats")
    assert "KIND" in table.out and "scrape" in table.out
    unhealthy = await cli(coord, "health")
    assert unhealthy.code == 1 and "no worker seen recently" in unhealthy.out
    await coord.queue.Lease(lease_request(worker_id="cli-worker", max_jobs=1))
    healthy = await cli(coord, "--json", "health")
    assert healthy.code == 0 and healthy.json()["healthy"] is True and healthy.json()["due"] == 2
    workers = await cli(coord, "workers")
    assert workers.code == 0 and "cli-worker" in workers.out
    assert (await cli(coord, "--json", "workers")).json()["workers"][0]["in_flight"] == "1"


async def test_jobs_list_and_show(coord: RunningCoordinator) -> None:
    done = await make_succeeded(coord, "https://shown.example/", title="Shown page")
    (queued,) = await enqueue(coord, scrape("https://waiting.example/"))
    listed = await cli(coord, "jobs", "list", "--state", "succeeded")
    assert listed.code == 0 and "https://shown.example/" in listed.out and "waiting" not in listed.out
    limited = await cli(coord, "--json", "jobs", "list", "--limit", "1")
    assert [j["id"] for j in limited.json()["jobs"]] == [str(queued)] and limited.json()["next_page_token"]
    everything = await cli(coord, "--json", "jobs", "list", "--all", "--since", "1h")
    assert {int(j["id"]) for j in everything.json()["jobs"]} == {done, queued}
    assert (await cli(coord, "--json", "jobs", "list", "--until", "1h")).json()["jobs"] == []
    shown = await cli(coord, "jobs", "show", str(done))
    assert shown.code == 0, shown.err
    for text in ("succeeded", "w-ok", "Shown page", "0 processed, 1 failed", "corrupt_image"):
        assert text in shown.out
    missing = await cli(coord, "jobs", "show", "999999")
    assert missing.code == 1 and "999999" in missing.err


async def test_show_of_a_job_that_succeeded_on_a_retry_does_not_lead_with_the_old_error(
    coord: RunningCoordinator,
) -> None:
    (job_id,) = await enqueue(coord, scrape("https://second-try.example/"))
    (first,) = (await coord.queue.Lease(lease_request(worker_id="w-retry"))).jobs
    await coord.queue.Fail(
        pb.FailRequest(
            job_id=first.id,
            lease_token=first.lease_token,
            error_type="timeout",
            error_message="no answer within 30s",
            retryable=True,
            retry_after=duration_pb2.Duration(nanos=1),
        )
    )
    (second,) = (await coord.queue.Lease(lease_request(worker_id="w-retry"))).jobs
    await complete(coord, second)
    shown = await cli(coord, "jobs", "show", str(job_id))
    assert shown.code == 0, shown.err
    assert "succeeded" in shown.out and "last error" not in shown.out
    assert "timeout: no answer within 30s" in shown.out  # in the attempts table, as attempt 1's


async def test_dead_list_and_requeue(coord: RunningCoordinator) -> None:
    gone = await make_dead(coord, "https://gone.example/", error_type="http_4xx")
    other = await make_dead(coord, "https://flaky.example/", error_type="http_5xx")
    listed = await cli(coord, "dead", "list")
    assert listed.code == 0 and "http_4xx: HTTP 404" in listed.out and "https://flaky.example/" in listed.out
    assert (await cli(coord, "dead", "requeue")).code == 2
    refused = await cli(coord, "dead", "requeue", "--all")
    assert refused.code == 2 and "--yes" in refused.err
    by_filter = await cli(coord, "--json", "dead", "requeue", "--error-type", "http_5xx")
    assert by_filter.code == 0 and by_filter.json()["requeued_job_ids"] == [other]
    by_id = await cli(coord, "dead", "requeue", str(gone), str(other))
    assert by_id.code == 1  # the second is no longer dead
    assert f"requeued 1 dead job(s): {gone}" in by_id.out and "not requeued" in by_id.out
    assert (await get_job(coord, gone)).state == jobs_pb2.JOB_STATE_QUEUED
    await coord.queue.Lease(lease_request(worker_id="w", max_jobs=10))  # out of the way of the next dead job
    third = await make_dead(coord, "https://third.example/")
    everything = await cli(coord, "dead", "requeue", "--all", "--yes")
    assert everything.code == 0 and f"requeued 1 dead job(s): {third}" in everything.out


async def test_cancel(coord: RunningCoordinator) -> None:
    (queued,) = await enqueue(coord, scrape("https://cancel.example/"))
    run = await cli(coord, "cancel", str(queued))
    assert run.code == 0 and f"job {queued}: cancelled" in run.out
    (leased_id,) = await enqueue(coord, scrape("https://leased.example/"))
    await coord.queue.Lease(lease_request())
    leased = await cli(coord, "cancel", str(leased_id), "424242")
    assert leased.code == 1
    assert "cancel requested" in leased.out and "job 424242: not cancelled" in leased.out
    assert (await get_job(coord, leased_id)).cancel_requested


async def test_purge_finished_jobs(coord: RunningCoordinator) -> None:
    done = await make_succeeded(coord, "https://old.example/")
    (live,) = await enqueue(coord, scrape("https://live.example/"))
    refused = await cli(coord, "purge", "--older-than", "0s")
    assert refused.code == 2 and "--yes" in refused.err
    run = await cli(coord, "purge", "--older-than", "0s", "--yes", "--batch", "1")
    assert run.code == 0, run.err
    assert "purged 1 job(s)" in run.out
    assert (await cli(coord, "jobs", "show", str(done))).code == 1
    assert (await get_job(coord, live)).state == jobs_pb2.JOB_STATE_QUEUED
    assert (await cli(coord, "purge", "--older-than", "1d", "--state", "queued", "--yes")).code == 2


async def test_export_json_lines(coord: RunningCoordinator, tmp_path: Path) -> None:
    first = await make_succeeded(coord, "https://one.example/", title="One")
    second = await make_succeeded(coord, "https://two.example/", title="Two")
    run = await cli(coord, "export", "--kind", "scrape", "--page-size", "1")
    assert run.code == 0, run.err
    records = [json.loads(line) for line in run.out.splitlines()]
    assert [r["job_id"] for r in records] == [first, second]
    assert records[0]["url"] == "https://one.example/" and records[0]["finished_at"].endswith("Z")
    assert records[1]["result"]["scrape"]["title"] == "Two"
    assert records[1]["result"]["scrape"]["images"][0]["error_type"] == "corrupt_image"
    target = tmp_path / "results.jsonl"
    to_file = await cli(coord, "export", "--output", str(target))
    assert to_file.code == 0 and "exported 2 result(s)" in to_file.err
    assert len(target.read_text().splitlines()) == 2


async def test_wait_exit_codes(coord: RunningCoordinator) -> None:
    ok = await make_succeeded(coord, "https://ok.example/")
    run = await cli(coord, "wait", str(ok))
    assert run.code == 0 and "1 of 1 job(s) finished: 1 succeeded" in run.out
    dead = await make_dead(coord, "https://dead.example/")
    failed = await cli(coord, "wait", str(ok), str(dead))
    assert failed.code == 3 and f"job {dead} dead: http_4xx" in failed.out
    (queued,) = await enqueue(coord, scrape("https://slow.example/"))
    timed_out = await cli(coord, "--json", "wait", str(queued), "--timeout", "0.3s", "--interval", "0.1")
    assert timed_out.code == 4 and timed_out.json()["timed_out"] is True
    assert (await cli(coord, "wait", "--all", "--timeout", "0.3s")).code == 4

    waiting = asyncio.ensure_future(cli(coord, "wait", "--all", "--interval", "0.05"))
    (job,) = (await coord.queue.Lease(lease_request())).jobs
    await complete(coord, job)
    everything = await waiting
    assert everything.code == 0 and "no job is queued or leased" in everything.out


async def test_wait_counts_a_skipped_job_as_finished_not_failed(coord: RunningCoordinator) -> None:
    ok = await make_succeeded(coord, "https://ok.example/")
    # A final failure whose class is robots_disallowed skips the job rather than killing it.
    skipped = await make_dead(coord, "https://disallowed.example/private", error_type="robots_disallowed")
    run = await cli(coord, "wait", str(ok), str(skipped))
    assert run.code == 0, run.out + run.err
    assert "2 of 2 job(s) finished: 1 succeeded, 1 skipped" in run.out
    stats = await cli(coord, "--json", "stats")
    assert stats.json()["states"]["skipped"] == 1
    listed = await cli(coord, "--json", "jobs", "list", "--state", "skipped")
    assert [job["id"] for job in listed.json()["jobs"]] == [str(skipped)]  # int64 in JSON: a string


async def test_wait_all_after_jobs_ended_before_it_looked(coord: RunningCoordinator) -> None:
    ok_id, dead_id = await enqueue(coord, scrape("https://fine.example/"), scrape("https://gone.example/"))
    for job in (await coord.queue.Lease(lease_request(max_jobs=2))).jobs:
        await (complete(coord, job) if job.id == ok_id else fail(coord, job))
    late = await cli(coord, "wait", "--all")
    assert late.code == 3, late.out + late.err
    assert "no job is queued or leased" in late.out and "the newest enqueue ended before wait looked" in late.out
    assert f"job {dead_id} dead: http_4xx" in late.out and f"job {ok_id}" not in late.out
    assert (await cli(coord, "--json", "wait", "--all")).json()["failed"][0]["id"] == dead_id
    # A newer enqueue that went well is what the next wait reports on.
    await make_succeeded(coord, "https://newer.example/")
    assert (await cli(coord, "wait", "--all")).code == 0


async def watch_streams(coord: RunningCoordinator) -> float:
    """How many WatchJobs streams the coordinator has open (its gauge)."""
    return coord.coordinator.metrics.registry.get_sample_value("crawlfleet_watch_streams") or 0.0


async def test_wait_all_watches_the_unfinished_jobs_to_their_end(coord: RunningCoordinator) -> None:
    ok_id, dead_id = await enqueue(coord, scrape("https://one.example/"), scrape("https://two.example/"))
    waiting = asyncio.ensure_future(cli(coord, "--json", "wait", "--all", "--timeout", "60s"))
    await eventually(lambda: watch_streams(coord), what="the wait's stream")
    for job in (await coord.queue.Lease(lease_request(max_jobs=2))).jobs:
        await (complete(coord, job) if job.id == ok_id else fail(coord, job))
    run = await waiting
    assert run.code == 3, run.err
    assert run.json()["finished_meanwhile"] == {"succeeded": 1, "dead": 1, "cancelled": 0, "skipped": 0}
    assert [f["id"] for f in run.json()["failed"]] == [dead_id]


async def test_wait_for_a_job_that_does_not_exist(coord: RunningCoordinator) -> None:
    run = await cli(coord, "wait", "424242")
    assert run.code == 1 and "job 424242 does not exist" in run.err
