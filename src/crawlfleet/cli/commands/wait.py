"""``crawlfleet wait``: until given jobs (or every job queued or leased) finish, with live progress.

It watches over one stream (``JobQueue.WatchJobs``) instead of polling each job: the coordinator
reports jobs as they finish, and the watch reopens the stream when a coordinator drains or the
connection drops.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import NamedTuple

from crawlfleet.cli.context import Context, Progress
from crawlfleet.cli.errors import EXIT_JOBS_FAILED, EXIT_OK, EXIT_TIMEOUT, UsageError
from crawlfleet.cli.render import STATES, format_duration, parse_duration, state_name, truncate
from crawlfleet.client import Client, JobFilter, JobOutcome, JobsNotFound, WaitTimeout
from crawlfleet.client.models import to_datetime


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    wait = commands.add_parser(
        "wait",
        help="wait until jobs finish: exit 0 all succeeded (or skipped), 3 some dead or cancelled, 4 timeout",
        description="Waits until the given jobs finish, or with --all until every job queued or leased when it "
        "starts has finished. Exit status: 0 when all succeeded or were skipped (robots.txt disallows their "
        "URL: not a failure), 3 when some ended dead or cancelled, 4 on "
        "--timeout. With --all and nothing queued or leased, it reports on the newest enqueue instead (its jobs "
        "ended before wait looked): 3 when some of them are dead or cancelled.",
    )
    wait.add_argument("job_ids", type=int, nargs="*", metavar="ID")
    wait.add_argument("--all", action="store_true", help="every job queued or leased now, until each has finished")
    wait.add_argument("--timeout", help="give up after this long (e.g. 90s, 10m); default: no limit")
    # Accepted for the scripts of the polling days: wait now hears of finished jobs as they finish.
    wait.add_argument("--interval", help=argparse.SUPPRESS)
    wait.set_defaults(run=run_wait)


def run_wait(ctx: Context, ns: argparse.Namespace) -> int:
    if bool(ns.job_ids) == bool(ns.all):
        raise UsageError("give job ids or --all")
    timeout = parse_duration(ns.timeout) if ns.timeout else None
    if ns.interval is not None:
        parse_duration(ns.interval)  # still a usage error when malformed
    with ctx.client() as client:
        if ns.all:
            return wait_all(ctx, client, timeout)
        ids = sorted(set(ns.job_ids))
        outcomes, timed_out = watch_jobs(client, ids, timeout, ctx.progress("wait"))
    states = Counter(o.state.value for o in outcomes.values())
    unfinished = len(ids) - len(outcomes)
    failed = failures(outcomes)
    if ctx.settings.json:
        ctx.json(
            {
                "timed_out": timed_out,
                "states": {s: states[s] for s in STATES if states[s]},
                "unfinished": unfinished,
                "failed": [f.as_json() for f in failed],
            }
        )
    else:
        verdict = f"timed out after {format_duration(timeout or 0)}: " if timed_out else ""
        ctx.out(f"{verdict}{len(outcomes)} of {len(ids)} job(s) finished: {_counts(states, unfinished)}")
        for f in failed:
            ctx.out(f.line())
    return EXIT_TIMEOUT if timed_out else EXIT_JOBS_FAILED if failed else EXIT_OK


def watch_jobs(
    client: Client, ids: list[int], timeout: float | None, progress: Progress
) -> tuple[dict[int, JobOutcome], bool]:
    """How each job that finished ended, and whether the timeout came first."""
    outcomes: dict[int, JobOutcome] = {}
    try:
        for update in client.watch(ids, timeout=timeout):
            if update.not_found:
                raise JobsNotFound(update.not_found)
            outcomes.update((o.job_id, o) for o in update.finished)
            states = Counter(o.state.value for o in outcomes.values())
            progress.update(len(outcomes), len(ids), _counts(states, update.remaining), force=True)
    except WaitTimeout:
        return outcomes, True
    finally:
        progress.finish()
    return outcomes, False


def wait_all(ctx: Context, client: Client, timeout: float | None) -> int:
    """Waits for the jobs queued or leased now (the coordinator takes the snapshot) to finish."""
    progress = ctx.progress("wait")
    outcomes: dict[int, JobOutcome] = {}
    live = watched = 0
    timed_out = False
    try:
        for update in client.watch(all_unfinished=True, timeout=timeout):
            outcomes.update((o.job_id, o) for o in update.finished)
            live, watched = update.remaining, update.watched
            progress.update(watched - live, watched, f"{live} queued or leased", force=True)
    except WaitTimeout as error:
        timed_out, live = True, error.remaining
    finally:
        progress.finish()
    grown = Counter(o.state.value for o in outcomes.values())
    failed = failures(outcomes)
    # Nothing was queued or leased: jobs enqueued just before may have ended before wait looked.
    late = newest_enqueue_failures(client) if not watched and not timed_out else []
    failed += late
    if ctx.settings.json:
        meanwhile = {s: grown[s] for s in ("succeeded", "dead", "cancelled", "skipped")}
        ctx.json(
            {
                "timed_out": timed_out,
                "live": live,
                "finished_meanwhile": meanwhile,
                "failed": [f.as_json() for f in failed],
            }
        )
    else:
        verdict = f"timed out: {live} job(s) still queued or leased" if timed_out else "no job is queued or leased"
        ctx.out(f"{verdict}; meanwhile {_counts(grown)}")
        if late:
            ctx.out(f"the newest enqueue ended before wait looked, with {len(late)} job(s) dead or cancelled:")
        for f in failed:
            ctx.out(f.line())
    if timed_out:
        return EXIT_TIMEOUT
    return EXIT_JOBS_FAILED if failed else EXIT_OK


class Failure(NamedTuple):
    """A job waited for that ended dead or cancelled."""

    id: int
    state: str
    last_error: str

    def as_json(self) -> dict[str, object]:
        return self._asdict()

    def line(self) -> str:
        return f"  job {self.id} {self.state}: {truncate(self.last_error or '-', 100)}"


def failures(outcomes: dict[int, JobOutcome]) -> list[Failure]:
    return [Failure(o.job_id, o.state.value, o.last_error) for _, o in sorted(outcomes.items()) if o.failed]


def newest_enqueue_failures(client: Client) -> list[Failure]:
    """The jobs of the newest Enqueue call that ended dead or cancelled (one call's jobs share its
    creation time)."""
    newest = client.list_jobs(page_size=1).jobs
    if not newest:
        return []
    since = JobFilter(states=["dead", "cancelled"], created_after=to_datetime(newest[0].created_at))
    jobs = sorted(client.iter_jobs(since), key=lambda j: j.id)
    return [Failure(j.id, state_name(j.state), j.last_error) for j in jobs]


def _counts(states: Counter[str], unfinished: int = 0) -> str:
    parts = [f"{states[s]} {s}" for s in STATES if states[s] > 0]
    parts += [f"{unfinished} unfinished"] if unfinished else []
    return ", ".join(parts) or "none"
