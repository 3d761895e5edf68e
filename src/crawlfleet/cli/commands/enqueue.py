"""``crawlfleet enqueue``: URLs from arguments, a file or stdin (or JobSpecs as JSON lines), in batches.

URLs become scrape jobs, or with ``--kind sitemap`` sitemap jobs (a sitemap, or a site's root whose
robots.txt and /sitemap.xml name its sitemaps). A scrape or sitemap job deduplicates on its URL
while it is live; an idempotency key (``--idempotency-key`` for one job, ``--key-from-line`` for
``URL<TAB>KEY`` lines) makes separate jobs of one URL.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import json_format

from crawlfleet.cli.client import describe_error
from crawlfleet.cli.context import Context
from crawlfleet.cli.errors import EXIT_OK, CliError, UsageError
from crawlfleet.cli.render import id_ranges, parse_duration
from crawlfleet.client import ClientError, EnqueuedJob, InvalidArgument
from crawlfleet.client.calls import DEFAULT_ENQUEUE_BATCH, MAX_ENQUEUE_BATCH
from crawlfleet.client.specs import RENDER_MODES, duration
from crawlfleet.v1 import jobs_pb2


@dataclass(frozen=True)
class Item:
    """One job to enqueue and where it came from (for error messages)."""

    spec: jobs_pb2.JobSpec
    origin: str


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "enqueue",
        help="add scrape (or sitemap, or noop) jobs",
        description="Adds jobs. Inputs: URLs as arguments, --file PATH, or - for stdin; one URL per line "
        "(blank lines and # comments skipped), or a JobSpec as JSON on a line starting with '{' "
        "(the options below fill in what the JSON leaves unset).",
    )
    parser.add_argument("urls", nargs="*", metavar="URL", help="URLs to scrape (or sitemaps to read); - reads stdin")
    parser.add_argument("--file", type=Path, help="read inputs from this file (- for stdin)")
    parser.add_argument(
        "--kind",
        choices=["scrape", "sitemap", "noop"],
        default="scrape",
        help="job kind (default scrape); sitemap: the URLs are sitemaps, or site roots whose sitemaps are found",
    )
    parser.add_argument("--render", choices=sorted(RENDER_MODES), help="how scrape jobs fetch pages (default http)")
    parser.add_argument("--priority", type=int, help="0 to 100, higher leases first")
    parser.add_argument("--max-attempts", type=int, help="attempts in all before a job goes dead")
    parser.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="the key of the one job enqueued: it deduplicates on the key instead of its URL, so one URL "
        "can have separate live jobs",
    )
    parser.add_argument(
        "--key-from-line",
        action="store_true",
        help="input lines are URL<TAB>KEY (or URL KEY): each job deduplicates on its own key",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_ENQUEUE_BATCH,
        help=f"jobs per Enqueue call (default {DEFAULT_ENQUEUE_BATCH})",
    )
    parser.add_argument("--count", type=int, default=1, help="with --kind noop: how many jobs (default 1)")
    parser.add_argument("--duration", help="with --kind noop: how long each job takes (e.g. 2s)")
    parser.set_defaults(run=run)


def run(ctx: Context, ns: argparse.Namespace) -> int:
    if not 1 <= ns.batch <= MAX_ENQUEUE_BATCH:
        raise UsageError(f"--batch must be between 1 and {MAX_ENQUEUE_BATCH}")
    items = [Item(_with_options(i.spec, ns), i.origin) for i in _inputs(ctx, ns)]
    if not items:
        raise UsageError("nothing to enqueue: give URLs, --file PATH or - (stdin)")
    if ns.idempotency_key is not None:
        if len(items) != 1:
            raise UsageError(
                f"--idempotency-key is the key of one job, and there are {len(items)}; "
                "give each line its key with --key-from-line (URL<TAB>KEY)"
            )
        items[0].spec.idempotency_key = items[0].spec.idempotency_key or ns.idempotency_key
    results: list[EnqueuedJob] = []
    progress = ctx.progress("enqueue")
    with ctx.client() as client:
        try:
            for batch in client.enqueue_batches([i.spec for i in items], batch_size=ns.batch):
                results.extend(batch)
                progress.update(len(results), len(items), force=len(results) == len(items))
        except ClientError as error:
            progress.finish()
            raise _located(error, describe_error(error, ctx.settings), items, len(results)) from None
    progress.finish()
    created = [j.id for j in results if j.created]
    existing = [j.id for j in results if not j.created]
    differing = [j.id for j in results if j.existing_spec_differs]
    if ctx.settings.json:
        ctx.json(
            {
                "created": len(created),
                "deduplicated": len(existing),
                "deduplicated_with_other_options": differing,
                "jobs": [{"id": j.id, "created": j.created} for j in results],
            }
        )
        return EXIT_OK
    ctx.out(f"enqueued {len(results)} job(s): {len(created)} created, {len(existing)} deduplicated onto live jobs")
    if created:
        ctx.out(f"created: {id_ranges(created)}")
    if existing:
        ctx.out(f"already queued or running: {id_ranges(existing)}")
    if differing:
        ctx.out(
            f"of those, enqueued with other options (render mode, priority, …), which they keep: {id_ranges(differing)}"
        )
    return EXIT_OK


def _inputs(ctx: Context, ns: argparse.Namespace) -> list[Item]:
    if ns.kind == "noop":
        if ns.urls or ns.file:
            raise UsageError("--kind noop takes no URLs; use --count N (or JobSpec JSON lines with --kind scrape)")
        if ns.count < 1:
            raise UsageError("--count must be at least 1")
        if ns.key_from_line:
            raise UsageError("--key-from-line reads URL<TAB>KEY lines; --kind noop takes none")
        noop = jobs_pb2.NoopSpec()
        if ns.duration:
            noop.duration.CopyFrom(duration(parse_duration(ns.duration)))
        return [Item(jobs_pb2.JobSpec(noop=noop), f"noop job {n + 1}") for n in range(ns.count)]
    if ns.duration or ns.count != 1:
        raise UsageError("--count and --duration go with --kind noop")
    sources = [str(ns.file)] if ns.file else []
    urls = list(ns.urls)
    if urls == ["-"]:
        sources, urls = ["-"], []
    elif "-" in urls or (sources and urls):
        raise UsageError("give URLs as arguments, --file PATH, or - (stdin): one of them")
    if ns.key_from_line and (urls or ns.idempotency_key is not None):
        raise UsageError("--key-from-line reads URL<TAB>KEY lines from --file or - (stdin), without --idempotency-key")
    make = _sitemap if ns.kind == "sitemap" else _scrape
    items = [Item(make(url), f"argument {n}") for n, url in enumerate(urls, 1)]
    for source in sources:
        name = "stdin" if source == "-" else source
        try:
            lines = ctx.stdin.read().splitlines() if source == "-" else Path(source).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {name}: {exc}") from None
        items.extend(parse_lines(lines, name, keyed=ns.key_from_line, make=make))
    return items


def parse_lines(
    lines: Iterable[str], name: str, *, keyed: bool = False, make: Callable[[str], jobs_pb2.JobSpec] | None = None
) -> list[Item]:
    """One URL or one JSON JobSpec per line; blank lines and ``#`` comments are skipped. ``make``
    turns a URL into its job (a scrape job by default).

    ``keyed``: a URL line is ``URL<TAB>KEY`` (any whitespace), the job's idempotency key after its URL.
    """
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
        elif keyed:
            url, _, key = line.partition("\t") if "\t" in line else line.partition(" ")
            if not key.strip():
                raise UsageError(f"{origin}: no key after the URL (--key-from-line reads URL<TAB>KEY lines)")
            spec = (make or _scrape)(url.strip())
            spec.idempotency_key = key.strip()
            items.append(Item(spec, origin))
        else:
            items.append(Item((make or _scrape)(line), origin))
    return items


def _scrape(url: str) -> jobs_pb2.JobSpec:
    return jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url=url))


def _sitemap(url: str) -> jobs_pb2.JobSpec:
    return jobs_pb2.JobSpec(sitemap=jobs_pb2.SitemapSpec(url=url))


def _with_options(spec: jobs_pb2.JobSpec, ns: argparse.Namespace) -> jobs_pb2.JobSpec:
    """The flags fill in what the spec leaves unset; the coordinator checks the values."""
    if ns.render and spec.HasField("scrape") and spec.scrape.render == jobs_pb2.RENDER_MODE_UNSPECIFIED:
        spec.scrape.render = RENDER_MODES[ns.render]
    if ns.priority is not None and not spec.priority:
        spec.priority = ns.priority
    if ns.max_attempts is not None and not spec.retry_policy.maximum_attempts:
        spec.retry_policy.maximum_attempts = ns.max_attempts
    return spec


def _located(cause: ClientError, error: CliError, items: list[Item], done: int) -> CliError:
    """The error with the input the offending job came from, and what went in before its batch."""
    index = cause.job_index if isinstance(cause, InvalidArgument) else None
    where = f" ({items[index].origin})" if index is not None and index < len(items) else ""
    before = f"; {done} job(s) enqueued before this batch" if done else "; nothing was enqueued"
    return CliError(f"{error.message}{where}{before}", error.exit_code, field=error.field)
