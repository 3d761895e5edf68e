"""``crawlfleet enqueue``: URLs from arguments, a file or stdin (or JobSpecs as JSON lines), in batches."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import json_format

from crawlfleet.cli.context import Context
from crawlfleet.cli.errors import EXIT_OK, CliError, UsageError
from crawlfleet.cli.render import id_ranges, parse_duration
from crawlfleet.coordinator.api import convert
from crawlfleet.v1 import job_queue_pb2, jobs_pb2

DEFAULT_BATCH = 1000
MAX_BATCH = 10_000  # the coordinator's limit per Enqueue call
RENDER_MODES = {
    "http": jobs_pb2.RENDER_MODE_HTTP,
    "browser": jobs_pb2.RENDER_MODE_BROWSER,
    "auto": jobs_pb2.RENDER_MODE_AUTO,
}
_JOB_INDEX = re.compile(r"^jobs\[(\d+)\]")


@dataclass(frozen=True)
class Item:
    """One job to enqueue and where it came from (for error messages)."""

    spec: jobs_pb2.JobSpec
    origin: str


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "enqueue",
        help="add scrape (or noop) jobs",
        description="Adds jobs. Inputs: URLs as arguments, --file PATH, or - for stdin; one URL per line "
        "(blank lines and # comments skipped), or a JobSpec as JSON on a line starting with '{' "
        "(the options below fill in what the JSON leaves unset).",
    )
    parser.add_argument("urls", nargs="*", metavar="URL", help="URLs to scrape; - reads stdin")
    parser.add_argument("--file", type=Path, help="read inputs from this file (- for stdin)")
    parser.add_argument("--kind", choices=["scrape", "noop"], default="scrape", help="job kind (default scrape)")
    parser.add_argument("--render", choices=sorted(RENDER_MODES), help="how scrape jobs fetch pages (default http)")
    parser.add_argument("--priority", type=int, help="0 to 100, higher leases first")
    parser.add_argument("--max-attempts", type=int, help="attempts in all before a job goes dead")
    parser.add_argument(
        "--batch", type=int, default=DEFAULT_BATCH, help=f"jobs per Enqueue call (default {DEFAULT_BATCH})"
    )
    parser.add_argument("--count", type=int, default=1, help="with --kind noop: how many jobs (default 1)")
    parser.add_argument("--duration", help="with --kind noop: how long each job takes (e.g. 2s)")
    parser.set_defaults(run=run)


def run(ctx: Context, ns: argparse.Namespace) -> int:
    if not 1 <= ns.batch <= MAX_BATCH:
        raise UsageError(f"--batch must be between 1 and {MAX_BATCH}")
    items = [Item(_with_options(i.spec, ns), i.origin) for i in _inputs(ctx, ns)]
    if not items:
        raise UsageError("nothing to enqueue: give URLs, --file PATH or - (stdin)")
    results: list[job_queue_pb2.EnqueuedJob] = []
    progress = ctx.progress("enqueue")
    with ctx.client() as client:
        for start in range(0, len(items), ns.batch):
            batch = items[start : start + ns.batch]
            request = job_queue_pb2.EnqueueRequest(jobs=[i.spec for i in batch])
            try:
                response = client.call(client.queue.Enqueue, request)
            except CliError as error:
                progress.finish()
                raise _located(error, batch, len(results)) from None
            results.extend(response.jobs)
            progress.update(len(results), len(items), force=len(results) == len(items))
    progress.finish()
    created = [j.id for j in results if j.created]
    existing = [j.id for j in results if not j.created]
    if ctx.settings.json:
        ctx.json(
            {
                "created": len(created),
                "deduplicated": len(existing),
                "jobs": [{"id": j.id, "created": j.created} for j in results],
            }
        )
        return EXIT_OK
    ctx.out(f"enqueued {len(results)} job(s): {len(created)} created, {len(existing)} deduplicated onto live jobs")
    if created:
        ctx.out(f"created: {id_ranges(created)}")
    if existing:
        ctx.out(f"already queued or running: {id_ranges(existing)}")
    return EXIT_OK


def _inputs(ctx: Context, ns: argparse.Namespace) -> list[Item]:
    if ns.kind == "noop":
        if ns.urls or ns.file:
            raise UsageError("--kind noop takes no URLs; use --count N (or JobSpec JSON lines with --kind scrape)")
        if ns.count < 1:
            raise UsageError("--count must be at least 1")
        noop = jobs_pb2.NoopSpec()
        if ns.duration:
            noop.duration.CopyFrom(convert.duration(parse_duration(ns.duration)))
        return [Item(jobs_pb2.JobSpec(noop=noop), f"noop job {n + 1}") for n in range(ns.count)]
    if ns.duration or ns.count != 1:
        raise UsageError("--count and --duration go with --kind noop")
    sources = [str(ns.file)] if ns.file else []
    urls = list(ns.urls)
    if urls == ["-"]:
        sources, urls = ["-"], []
    elif "-" in urls or (sources and urls):
        raise UsageError("give URLs as arguments, --file PATH, or - (stdin): one of them")
    items = [Item(_scrape(url), f"argument {n}") for n, url in enumerate(urls, 1)]
    for source in sources:
        name = "stdin" if source == "-" else source
        try:
            lines = ctx.stdin.read().splitlines() if source == "-" else Path(source).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {name}: {exc}") from None
        items.extend(parse_lines(lines, name))
    return items


def parse_lines(lines: Iterable[str], name: str) -> list[Item]:
    """One URL or one JSON JobSpec per line; blank lines and ``#`` comments are skipped."""
    items = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        origin = f"{name} line {number}"
        if line.startswith("{"):
            spec = jobs_pb2.JobSpec()
            try:
                json_format.Parse(line, spec)
            except json_format.ParseError as exc:
                raise UsageError(f"{origin}: not a JobSpec in JSON: {exc}") from None
            items.append(Item(spec, origin))
        else:
            items.append(Item(_scrape(line), origin))
    return items


def _scrape(url: str) -> jobs_pb2.JobSpec:
    return jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url=url))


def _with_options(spec: jobs_pb2.JobSpec, ns: argparse.Namespace) -> jobs_pb2.JobSpec:
    """The flags fill in what the spec leaves unset; the coordinator checks the values."""
    if ns.render and spec.HasField("scrape") and spec.scrape.render == jobs_pb2.RENDER_MODE_UNSPECIFIED:
        spec.scrape.render = RENDER_MODES[ns.render]
    if ns.priority is not None and not spec.priority:
        spec.priority = ns.priority
    if ns.max_attempts is not None and not spec.retry_policy.maximum_attempts:
        spec.retry_policy.maximum_attempts = ns.max_attempts
    return spec


def _located(error: CliError, batch: list[Item], done: int) -> CliError:
    """The error with the input the offending ``jobs[i]`` came from, and what went in before it."""
    match = _JOB_INDEX.match(error.field or "")
    index = int(match.group(1)) if match else len(batch)
    where = f" ({batch[index].origin})" if index < len(batch) else ""
    before = f"; {done} job(s) enqueued before this batch" if done else "; nothing was enqueued"
    return CliError(f"{error.message}{where}{before}", error.exit_code, field=error.field)
