"""``crawlfleet export``: results as JSON lines; and the short summary of one result that ``jobs show`` prints."""

from __future__ import annotations

import argparse
import datetime as dt
from collections import Counter
from pathlib import Path
from typing import TextIO

from crawlfleet.cli.context import Context
from crawlfleet.cli.errors import EXIT_OK, UsageError
from crawlfleet.cli.render import dumps, message_dict, parse_time, to_datetime, truncate
from crawlfleet.client import field_values
from crawlfleet.v1 import admin_pb2, jobs_pb2

EXPORT_PAGE = 100


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = commands.add_parser(
        "export",
        help="results of succeeded jobs as JSON lines",
        description="Writes one JSON object per succeeded job, in job id order: job_id, kind, url, finished_at, "
        "fields (a scrape job's declared fields by name) and result (the JobResult with .proto field names; "
        "thumbnail bytes left out). With --crawl, only the pages of that crawl stored so far.",
    )
    export.add_argument("--kind", help="only jobs of this kind (scrape, sitemap, noop)")
    export.add_argument("--crawl", type=int, metavar="ID", help="only the pages of this crawl")
    export.add_argument("--url-prefix", help="only jobs whose normalized URL starts with this")
    export.add_argument(
        "--changed-since",
        help="only pages that changed since then (fetched in full, with new content): ISO 8601 time, or ago like 1d",
    )
    export.add_argument("--output", "-o", type=Path, help="write to this file instead of stdout")
    export.add_argument("--page-size", type=int, default=EXPORT_PAGE, help=f"results per call (default {EXPORT_PAGE})")
    export.set_defaults(run=run_export)


def run_export(ctx: Context, ns: argparse.Namespace) -> int:
    if not 1 <= ns.page_size <= 1000:
        raise UsageError("--page-size must be between 1 and 1000")
    if ns.crawl is not None and ns.crawl < 1:
        raise UsageError("--crawl takes a crawl id (crawlfleet crawl list)")
    if ns.output is None:
        count = export(ctx, ns, ctx.stdout)
    else:
        try:
            with ns.output.open("w", encoding="utf-8") as out:
                count = export(ctx, ns, out)
        except OSError as exc:
            raise UsageError(f"cannot write {ns.output}: {exc.strerror}") from None
        ctx.err(f"exported {count} result(s) to {ns.output}")
    return EXIT_OK


def export(ctx: Context, ns: argparse.Namespace, out: TextIO) -> int:
    count = 0
    # Results on a terminal and a progress line beside them would interleave.
    progress = ctx.progress("export") if out is not ctx.stdout else None
    changed_since = parse_time(ns.changed_since, dt.datetime.now(dt.UTC)) if ns.changed_since else None
    with ctx.client() as client:
        if ns.crawl is not None:
            client.get_crawl(ns.crawl)  # a crawl that does not exist is an error, not an empty export
        results = client.iter_results(
            kind=ns.kind,
            crawl_id=ns.crawl,
            page_size=ns.page_size,
            changed_since=changed_since,
            url_prefix=ns.url_prefix or None,
        )
        for entry in results:
            out.write(dumps(export_record(entry)) + "\n")
            count += 1
            if progress is not None:
                progress.update(count, None)
    if progress is not None:
        progress.finish()
    out.flush()
    return count


def export_record(entry: admin_pb2.ResultEntry) -> dict[str, object]:
    record: dict[str, object] = {
        "job_id": entry.job_id,
        "kind": entry.kind,
        "url": entry.target_url,
        "finished_at": to_datetime(entry.finished_at).isoformat().replace("+00:00", "Z"),
    }
    if entry.result.WhichOneof("payload") == "scrape":
        record["fields"] = field_values(entry.spec, entry.result)
    record["result"] = message_dict(entry.result)
    return record


def image_counts(result: jobs_pb2.JobResult) -> tuple[int, int]:
    """(processed, failed) images of a result."""
    images = result.scrape.images
    failed = sum(1 for i in images if i.error_type)
    return len(images) - failed, failed


# Sitemap URLs and errors `jobs show` lists; export and --json give them all.
SHOWN_SITEMAP_ITEMS = 10


def result_lines(result: jobs_pb2.JobResult, spec: jobs_pb2.JobSpec | None = None) -> list[str]:
    """What a person wants to see first of a result (and of its declared fields, with the job's spec)."""
    kind = result.WhichOneof("payload")
    if kind == "sitemap":
        return sitemap_lines(result.sitemap)
    if kind != "scrape":
        return [f"{kind or 'empty'} result"]
    page = result.scrape
    rendered = jobs_pb2.RenderMode.Name(page.rendered_with).removeprefix("RENDER_MODE_").lower()
    lines = [
        f"status      {page.status_code} {page.content_type}".rstrip(),
        f"final URL   {page.final_url}" + (f"  ({len(page.redirects)} redirect(s))" if page.redirects else ""),
    ]
    if page.not_modified:
        lines.append(f"unchanged   not modified since the validators sent (fetched by {rendered})")
        return lines
    lines += [
        f"title       {truncate(page.title, 100) or '-'}",
        f"fetched by  {rendered}",
        f"text        {len(page.main_text)} characters, {len(page.links)} link(s), {len(page.json_ld)} JSON-LD",
    ]
    if page.content_sha256:
        lines.append(f"content     sha256 {page.content_sha256}")
    for name, value in field_values(spec or jobs_pb2.JobSpec(), result).items():
        if value is None or isinstance(value, str):
            shown = "-" if value is None else value
        else:
            shown = f"{len(value)} value(s): " + "; ".join(value)
        lines.append(f"field       {name} = {truncate(shown, 100)}")
    processed, failed = image_counts(result)
    lines.append(f"images      {processed} processed, {failed} failed")
    errors = Counter(f"{i.error_type}: {truncate(i.error_message, 60)}" for i in page.images if i.error_type)
    lines += [f"  failed    {n} x {error}" for error, n in errors.items()]
    thumbnails = sum(len(i.thumbnails) for i in page.images)
    if thumbnails:
        lines.append(f"thumbnails  {thumbnails}")
    return lines


def sitemap_lines(found: jobs_pb2.SitemapResult) -> list[str]:
    """Counts, then the first URLs and errors of a sitemap result."""
    lines = [
        f"URLs        {len(found.entries)}" + ("  (truncated: the sitemaps list more)" if found.truncated else ""),
        f"sitemaps    {len(found.sitemaps)} read, {len(found.errors)} error(s)",
    ]
    for entry in found.entries[:SHOWN_SITEMAP_ITEMS]:
        lastmod = f"  {to_datetime(entry.lastmod).date().isoformat()}" if entry.HasField("lastmod") else ""
        lines.append(f"  {truncate(entry.url, 100)}{lastmod}")
    if len(found.entries) > SHOWN_SITEMAP_ITEMS:
        lines.append(f"  ... {len(found.entries) - SHOWN_SITEMAP_ITEMS} more (--json or export for all)")
    for error in found.errors[:SHOWN_SITEMAP_ITEMS]:
        lines.append(f"  error     {truncate(error, 110)}")
    if len(found.errors) > SHOWN_SITEMAP_ITEMS:
        lines.append(f"  ... {len(found.errors) - SHOWN_SITEMAP_ITEMS} more error(s)")
    return lines
