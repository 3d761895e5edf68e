"""``crawlfleet jobs list``, ``jobs show`` and ``cancel``; the job filter options shared with ``dead``."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence

from crawlfleet.cli.client import describe_error
from crawlfleet.cli.commands.results import result_lines
from crawlfleet.cli.context import Context
from crawlfleet.cli.errors import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, UsageError
from crawlfleet.cli.render import (
    STATES,
    ago,
    format_duration,
    message_dict,
    parse_time,
    state_name,
    state_value,
    table,
    to_datetime,
    truncate,
    when,
)
from crawlfleet.client import Client, ClientError, JobFilter
from crawlfleet.v1 import jobs_pb2

DEFAULT_LIMIT = 50
MAX_PAGE = 1000


def add_filter_options(parser: argparse.ArgumentParser, *, states: bool = True) -> None:
    if states:
        parser.add_argument(
            "--state",
            action="append",
            default=[],
            help=f"only jobs in this state (repeat or comma-separate): {', '.join(STATES)}",
        )
    parser.add_argument("--kind", help="only jobs of this kind (scrape, sitemap, noop)")
    parser.add_argument("--url-prefix", help="only jobs whose normalized URL starts with this")
    parser.add_argument("--since", help="created at or after: ISO 8601 time, or ago like 1h, 2d")
    parser.add_argument("--until", help="created before: ISO 8601 time, or ago like 30m")
    parser.add_argument("--error-type", help="only jobs whose last error has this type (e.g. http_5xx, timeout)")


def job_filter(ns: argparse.Namespace, *, states: Sequence[str] = ()) -> JobFilter:
    """The filter of the options; ``states`` overrides ``--state``."""
    now = dt.datetime.now(dt.UTC)
    names = list(states) or [s.strip() for arg in getattr(ns, "state", []) for s in arg.split(",") if s.strip()]
    for name in names:
        state_value(name)  # an unknown state is a usage error
    return JobFilter(
        states=names,
        kind=ns.kind or None,
        url_prefix=ns.url_prefix or None,
        created_after=parse_time(ns.since, now) if ns.since else None,
        created_before=parse_time(ns.until, now) if ns.until else None,
        error_type=ns.error_type or None,
    )


def has_filter(flt: JobFilter) -> bool:
    """Whether the filter narrows anything besides the states."""
    return bool(flt.kind or flt.url_prefix or flt.error_type or flt.created_after or flt.created_before)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    jobs = commands.add_parser("jobs", help="list jobs, show one").add_subparsers(dest="jobs_command", required=True)
    listing = jobs.add_parser("list", help="jobs matching filters, newest first")
    add_filter_options(listing)
    add_limit_options(listing)
    listing.set_defaults(run=run_list)
    show = jobs.add_parser("show", help="one job: attempts and result")
    show.add_argument("job_id", type=int, metavar="ID")
    show.set_defaults(run=run_show)
    cancel = commands.add_parser("cancel", help="cancel jobs (a leased job stops at its next heartbeat)")
    cancel.add_argument("job_ids", type=int, nargs="+", metavar="ID")
    cancel.set_defaults(run=run_cancel)


def add_limit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help=f"at most this many (default {DEFAULT_LIMIT})")
    parser.add_argument("--all", action="store_true", help="every matching job, page after page")


def fetch_jobs(client: Client, flt: JobFilter, limit: int | None) -> tuple[list[jobs_pb2.Job], str]:
    """Jobs page after page up to ``limit`` (None: all); and the token of the page after them."""
    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    jobs: list[jobs_pb2.Job] = []
    token = ""
    while True:
        size = MAX_PAGE if limit is None else min(MAX_PAGE, limit - len(jobs))
        page = client.list_jobs(flt, page_size=size, page_token=token)
        jobs.extend(page.jobs)
        token = page.next_page_token
        if not token or (limit is not None and len(jobs) >= limit):
            return jobs, token


def print_jobs(ctx: Context, ns: argparse.Namespace, flt: JobFilter, *, error_width: int = 50) -> int:
    with ctx.client() as client:
        jobs, token = fetch_jobs(client, flt, None if ns.all else ns.limit)
    if ctx.settings.json:
        ctx.json({"jobs": [message_dict(j) for j in jobs], "next_page_token": token})
        return EXIT_OK
    if not jobs:
        ctx.out("no jobs match")
        return EXIT_OK
    now = dt.datetime.now(dt.UTC)
    rows = [
        (
            j.id,
            state_name(j.state),
            j.kind,
            f"{j.attempt}/{j.max_attempts}",
            ago(j.created_at, now),
            truncate(j.target_url or "-", 60),
            truncate(j.last_error, error_width) if j.last_error else "",
        )
        for j in jobs
    ]
    ctx.out(table(["ID", "STATE", "KIND", "ATTEMPTS", "CREATED", "URL", "LAST ERROR"], rows, right=[0]))
    if token:
        ctx.out(f"(first {len(jobs)}; more may match: --limit N or --all)")
    return EXIT_OK


def run_list(ctx: Context, ns: argparse.Namespace) -> int:
    return print_jobs(ctx, ns, job_filter(ns))


def run_show(ctx: Context, ns: argparse.Namespace) -> int:
    with ctx.client() as client:
        job = client.get_job(ns.job_id)
    if ctx.settings.json:
        ctx.json(message_dict(job))
        return EXIT_OK
    now = dt.datetime.now(dt.UTC)
    spec = job.spec
    render = jobs_pb2.RenderMode.Name(spec.scrape.render).removeprefix("RENDER_MODE_").lower()
    fields: list[tuple[str, object]] = [
        ("job", f"{job.id} ({job.kind})"),
        ("state", state_name(job.state) + ("  (cancel requested)" if job.cancel_requested else "")),
        ("url", job.target_url or "-"),
        ("attempts", f"{job.attempt} of {job.max_attempts}"),
        ("priority", spec.priority),
        ("created", when(job.created_at, now)),
        ("run at", when(job.run_at, now)),
    ]
    if job.kind == "scrape":
        fields.insert(3, ("render", "http (default)" if render == "unspecified" else render))
    elif job.kind == "sitemap":
        fields.insert(3, ("max URLs", spec.sitemap.max_urls or "the worker's default"))
    if job.leased_by:
        fields += [("leased by", job.leased_by), ("leased", when(job.leased_at, now))]
        fields.append(("lease expires", when(job.lease_expires_at, now)))
    fields.append(("finished", when(job.finished_at, now)))
    if job.state != jobs_pb2.JOB_STATE_SUCCEEDED:
        # A succeeded job's last error is an earlier attempt's: the attempts below show it in place.
        fields.append(("last error", job.last_error or "-"))
    ctx.out(table(None, fields))
    if job.attempts:
        ctx.out("\nattempts:")
        rows = []
        for a in job.attempts:
            took = (to_datetime(a.finished_at) - to_datetime(a.started_at)).total_seconds()
            error = f"{a.error_type}: {a.error_message}" if a.error_type else ""
            rows.append(
                (
                    a.number,
                    a.worker_id,
                    when(a.started_at, now),
                    format_duration(max(0.0, took)),
                    a.outcome,
                    truncate(error, 70),
                )
            )
        ctx.out(_indent(table(["#", "WORKER", "STARTED", "TOOK", "OUTCOME", "ERROR"], rows, right=[0])))
    if job.HasField("result"):
        ctx.out("\nresult:")
        ctx.out(_indent("\n".join(result_lines(job.result, job.spec))))
    return EXIT_OK


def run_cancel(ctx: Context, ns: argparse.Namespace) -> int:
    outcomes: list[dict[str, object]] = []
    failed = False
    with ctx.client() as client:
        for job_id in ns.job_ids:
            try:
                state = client.cancel(job_id).value
            except ClientError as error:
                described = describe_error(error, ctx.settings)
                if described.exit_code == EXIT_UNREACHABLE:
                    raise described from None
                failed = True
                outcomes.append({"job_id": job_id, "error": described.message})
                continue
            failed = failed or state in ("succeeded", "dead", "skipped")
            outcomes.append({"job_id": job_id, "state": state})
    if ctx.settings.json:
        ctx.json({"jobs": outcomes})
    for o in [] if ctx.settings.json else outcomes:
        ctx.out(f"job {o['job_id']}: {_cancel_text(o)}")
    return EXIT_FAILED if failed else EXIT_OK


def _cancel_text(outcome: dict[str, object]) -> str:
    state = outcome.get("state")
    if state is None:
        return f"not cancelled: {outcome['error']}"
    if state == "cancelled":
        return "cancelled"
    if state == "leased":
        return "cancel requested: it stops at its worker's next heartbeat"
    return f"not cancelled: it already finished ({state})"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
