"""``crawlfleet wait``: until given jobs (or every queued and leased job) finish, with live progress."""

from __future__ import annotations

import argparse
import time
from collections import Counter

from crawlfleet.cli.client import Client
from crawlfleet.cli.context import Context, Progress
from crawlfleet.cli.errors import EXIT_JOBS_FAILED, EXIT_OK, EXIT_TIMEOUT, UsageError
from crawlfleet.cli.render import STATES, TERMINAL_STATES, format_duration, parse_duration, state_name, truncate
from crawlfleet.common.states import TERMINAL_STATE_NAMES
from crawlfleet.v1 import admin_pb2, jobs_pb2

POLL_INTERVAL = 0.5


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    wait = commands.add_parser(
        "wait",
        help="wait until jobs finish: exit 0 all succeeded, 3 some dead or cancelled, 4 timeout",
        description="Waits until the given jobs finish, or with --all until no job is queued or leased. "
        "Exit status: 0 when all succeeded, 3 when some ended dead or cancelled (with --all: when the "
        "dead or cancelled counts grew meanwhile), 4 on --timeout.",
    )
    wait.add_argument("job_ids", type=int, nargs="*", metavar="ID")
    wait.add_argument("--all", action="store_true", help="every job queued or leased, until none is")
    wait.add_argument("--timeout", help="give up after this long (e.g. 90s, 10m); default: no limit")
    wait.add_argument("--interval", default=str(POLL_INTERVAL), help=f"poll interval (default {POLL_INTERVAL}s)")
    wait.set_defaults(run=run_wait)


def run_wait(ctx: Context, ns: argparse.Namespace) -> int:
    if bool(ns.job_ids) == bool(ns.all):
        raise UsageError("give job ids or --all")
    timeout = parse_duration(ns.timeout) if ns.timeout else None
    interval = max(0.05, parse_duration(ns.interval))
    deadline = None if timeout is None else time.monotonic() + timeout
    with ctx.client() as client:
        if ns.all:
            return wait_all(ctx, client, deadline, interval)
        jobs = wait_jobs(client, sorted(set(ns.job_ids)), deadline, interval, ctx.progress("wait"))
    states = Counter(state_name(j.state) for j in jobs.values())
    failed = [j for j in jobs.values() if state_name(j.state) in ("dead", "cancelled")]
    timed_out = any(state_name(j.state) not in TERMINAL_STATES for j in jobs.values())
    if ctx.settings.json:
        ctx.json(
            {
                "timed_out": timed_out,
                "states": {s: states[s] for s in STATES if states[s]},
                "failed": [{"id": j.id, "state": state_name(j.state), "last_error": j.last_error} for j in failed],
            }
        )
    else:
        finished = sum(states[s] for s in TERMINAL_STATES)
        verdict = f"timed out after {format_duration(timeout or 0)}: " if timed_out else ""
        ctx.out(f"{verdict}{finished} of {len(jobs)} job(s) finished: {_counts(states)}")
        for j in failed:
            ctx.out(f"  job {j.id} {state_name(j.state)}: {truncate(j.last_error or '-', 100)}")
    return EXIT_TIMEOUT if timed_out else EXIT_JOBS_FAILED if failed else EXIT_OK


def wait_jobs(
    client: Client, ids: list[int], deadline: float | None, interval: float, progress: Progress
) -> dict[int, jobs_pb2.Job]:
    """The jobs as last seen: every one finished, or the deadline passed."""
    jobs: dict[int, jobs_pb2.Job] = {}
    pending = list(ids)
    while True:
        for job_id in pending:
            jobs[job_id] = client.call(client.admin.GetJob, admin_pb2.GetJobRequest(job_id=job_id)).job
        pending = [i for i in pending if state_name(jobs[i].state) not in TERMINAL_STATES]
        states = Counter(state_name(j.state) for j in jobs.values())
        progress.update(len(ids) - len(pending), len(ids), _counts(states), force=True)
        if not pending or (deadline is not None and time.monotonic() >= deadline):
            progress.finish()
            return jobs
        time.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))


def wait_all(ctx: Context, client: Client, deadline: float | None, interval: float) -> int:
    def counts() -> dict[str, int]:
        stats = client.call(client.admin.GetQueueStats, admin_pb2.GetQueueStatsRequest())
        return {state_name(s.state): s.count for s in stats.states}

    progress = ctx.progress("wait")
    first = current = counts()
    total = first.get("queued", 0) + first.get("leased", 0)
    while True:
        live = current.get("queued", 0) + current.get("leased", 0)
        progress.update(max(0, total - live), max(total, live), f"{live} queued or leased", force=True)
        if live == 0 or (deadline is not None and time.monotonic() >= deadline):
            break
        time.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))
        current = counts()
    progress.finish()
    grown = {s: current.get(s, 0) - first.get(s, 0) for s in TERMINAL_STATE_NAMES}
    if ctx.settings.json:
        ctx.json({"timed_out": live > 0, "live": live, "finished_meanwhile": grown})
    else:
        verdict = f"timed out: {live} job(s) still queued or leased" if live else "no job is queued or leased"
        ctx.out(f"{verdict}; meanwhile {_counts(Counter(grown))}")
    if live:
        return EXIT_TIMEOUT
    return EXIT_JOBS_FAILED if grown["dead"] > 0 or grown["cancelled"] > 0 else EXIT_OK


def _counts(states: Counter[str]) -> str:
    return ", ".join(f"{states[s]} {s}" for s in STATES if states[s] > 0) or "none"
