"""``crawlfleet crawl start``, ``status``, ``list``, ``wait`` and ``cancel``: crawls from seed URLs.

Waiting follows the crawl over one stream (``Client.wait_crawl``, ``Crawls.WatchCrawl``): the
coordinator sends the crawl whenever its counts change, and ends the stream when the crawl ends.
Ctrl-C stops the waiting, not the crawl.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Mapping

from crawlfleet.cli.commands.crawl_report import (
    crawl_state_name,
    ended_line,
    job_counts,
    jobs_total,
    list_table,
    speed,
    status_report,
)
from crawlfleet.cli.commands.hosts import ROBOTS
from crawlfleet.cli.context import Context
from crawlfleet.cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_JOBS_FAILED, EXIT_OK, EXIT_TIMEOUT, UsageError
from crawlfleet.cli.render import format_duration, message_dict, parse_duration
from crawlfleet.client import Client, CrawlSpec, CrawlState, CrawlWaitTimeout, RetryPolicy
from crawlfleet.client.crawl_specs import CRAWL_SCOPES
from crawlfleet.client.crawls import MAX_CRAWL_PAGE_SIZE
from crawlfleet.client.specs import RENDER_MODES
from crawlfleet.v1 import crawls_pb2

DEFAULT_LIMIT = 50


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    crawl = commands.add_parser(
        "crawl",
        help="start, follow and cancel crawls",
        description="A crawl follows links from seed URLs within a scope, patterns, a depth and an exact number "
        "of pages (docs/crawls.md).",
    )
    sub = crawl.add_subparsers(dest="crawl_command", required=True)
    _register_start(sub)
    status = sub.add_parser("status", help="a crawl's progress: jobs by state and depth, errors")
    status.add_argument("crawl_id", type=int, metavar="ID")
    status.set_defaults(run=run_status)
    listing = sub.add_parser("list", help="crawls, newest first")
    listing.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, help=f"at most this many (default {DEFAULT_LIMIT})"
    )
    listing.add_argument("--all", action="store_true", help="every crawl, page after page")
    listing.set_defaults(run=run_list)
    wait = sub.add_parser(
        "wait",
        help="wait until a crawl ends: exit 0 finished, 3 cancelled, 4 timeout",
        description="Waits until the crawl has finished (none of its jobs queued or leased) or was cancelled, "
        "with a progress line on a terminal. Ctrl-C stops waiting; the crawl goes on.",
    )
    wait.add_argument("crawl_id", type=int, metavar="ID")
    wait.add_argument("--timeout", help="give up after this long (e.g. 90s, 10m); default: no limit")
    wait.set_defaults(run=run_wait)
    cancel = sub.add_parser(
        "cancel", help="stop a crawl: its queued jobs are cancelled, its leased ones stop at their next heartbeat"
    )
    cancel.add_argument("crawl_id", type=int, metavar="ID")
    cancel.set_defaults(run=run_cancel)
    refresh = sub.add_parser(
        "refresh",
        help="crawl an ended crawl again, as a new crawl: known pages with conditional GETs",
        description="Starts a new crawl with the ended crawl's spec; each page it had is fetched with a "
        "conditional GET, an unchanged page is stored as not modified (docs/crawls.md).",
    )
    refresh.add_argument("crawl_id", type=int, metavar="ID")
    refresh.add_argument("--wait", action="store_true", help="wait until the new crawl ends, with progress")
    refresh.set_defaults(run=run_refresh)


def _register_start(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    start = sub.add_parser(
        "start",
        help="start a crawl from seed URLs",
        description="Starts a crawl from the seed URLs and prints its id. Unset limits take the coordinator's "
        "defaults (depth 3, 10000 pages). With --wait, waits until it ends (exit 0 finished, 3 cancelled, 4 "
        "timeout); Ctrl-C stops waiting, not the crawl.",
    )
    start.add_argument("seeds", nargs="+", metavar="URL", help="where the crawl starts, at depth 0")
    start.add_argument("--depth", type=int, metavar="N", help="follow links this deep (0: the seeds only; default 3)")
    start.add_argument("--max-pages", type=int, metavar="N", help="pages in all, seeds included (default 10000)")
    start.add_argument("--max-pages-per-host", type=int, metavar="N", help="pages of one host (default: --max-pages)")
    start.add_argument("--max-query-variants", type=int, metavar="N", help="distinct queries of one path (default 100)")
    start.add_argument("--scope", choices=list(CRAWL_SCOPES), help="which links to follow (default same-hostname)")
    start.add_argument("--allow", action="append", default=[], metavar="GLOB", help="follow only URLs matching one")
    start.add_argument("--deny", action="append", default=[], metavar="GLOB", help="never follow URLs matching one")
    start.add_argument(
        "--follow", action="append", default=[], metavar="SELECTOR", help="follow links inside these parts only"
    )
    start.add_argument("--render", choices=sorted(RENDER_MODES), help="how pages are fetched (default http)")
    start.add_argument("--no-images", action="store_true", help="do not download or process images")
    start.add_argument("--drop-tracking", action="store_true", help="drop utm_* and other tracking parameters")
    start.add_argument("--sort-query", action="store_true", help="sort query parameters before deduplicating")
    start.add_argument("--sitemaps", action="store_true", help="also crawl the URLs the sites' sitemaps list")
    start.add_argument(
        "--priority", type=int, metavar="N", help="0 to 100 for every job of the crawl, higher leases first"
    )
    start.add_argument("--max-attempts", type=int, metavar="N", help="attempts of each page before it goes dead")
    polite = start.add_argument_group(
        "politeness while the crawl runs",
        "host policies of the crawl for its seeds' hosts (its domains with --scope same-domain); an operator's "
        "policy for a host wins, and so does the strictest of several crawls. Looser than the fleet defaults "
        "needs the admin role.",
    )
    polite.add_argument("--host-concurrency", type=int, metavar="N", help="leases in flight at once per host")
    polite.add_argument("--delay", metavar="SECONDS", help="least time between two lease starts per host: 500ms, 2s")
    polite.add_argument("--robots", choices=sorted(ROBOTS), help="obey or ignore robots.txt")
    start.add_argument("--wait", action="store_true", help="wait until the crawl ends, with progress on stderr")
    start.add_argument("--timeout", metavar="T", help="with --wait: give up waiting after this long (e.g. 30m)")
    start.set_defaults(run=run_start)


def crawl_of(ns: argparse.Namespace) -> CrawlSpec:
    """The crawl the options describe; the coordinator checks the values."""
    return CrawlSpec(
        seeds=ns.seeds,
        scope=ns.scope,
        allow=ns.allow,
        deny=ns.deny,
        max_depth=ns.depth,
        max_pages=ns.max_pages,
        max_pages_per_host=ns.max_pages_per_host,
        max_query_variants=ns.max_query_variants,
        drop_tracking_parameters=ns.drop_tracking,
        sort_query=ns.sort_query,
        sitemaps=ns.sitemaps,
        render=ns.render,
        follow=ns.follow,
        skip_images=ns.no_images,
        priority=ns.priority,
        retry=RetryPolicy(maximum_attempts=ns.max_attempts) if ns.max_attempts is not None else None,
        host_concurrency=ns.host_concurrency,
        host_delay=parse_duration(ns.delay) if ns.delay is not None else None,
        obey_robots=ROBOTS[ns.robots] if ns.robots is not None else None,
    )


def run_start(ctx: Context, ns: argparse.Namespace) -> int:
    if ns.timeout is not None and not ns.wait:
        raise UsageError("--timeout goes with --wait")
    timeout = parse_duration(ns.timeout) if ns.timeout else None
    spec = crawl_of(ns)
    with ctx.client() as client:
        started = client.start_crawl(spec)
        if not ns.wait:
            if ctx.settings.json:
                ctx.json({"crawl_id": started.id, "seeds_enqueued": started.seeds_enqueued})
            else:
                ctx.out(f"started crawl {started.id}: {started.seeds_enqueued} seed(s) enqueued")
                ctx.out(f"follow it with: crawlfleet crawl status {started.id}")
            return EXIT_OK
        if not ctx.settings.json:
            ctx.out(f"started crawl {started.id}: {started.seeds_enqueued} seed(s) enqueued")
        extra = {"crawl_id": started.id, "seeds_enqueued": started.seeds_enqueued}
        return wait_and_report(ctx, client, started.id, timeout, extra)


def run_refresh(ctx: Context, ns: argparse.Namespace) -> int:
    with ctx.client() as client:
        started = client.refresh_crawl(ns.crawl_id)
        extra = {"crawl_id": started.id, "refresh_of": ns.crawl_id, "seeds_enqueued": started.seeds_enqueued}
        if ctx.settings.json and not ns.wait:
            ctx.json(extra)
            return EXIT_OK
        if not ctx.settings.json:
            ctx.out(
                f"started crawl {started.id}, refreshing crawl {ns.crawl_id}: {started.seeds_enqueued} seed(s) enqueued"
            )
        if not ns.wait:
            return EXIT_OK
        return wait_and_report(ctx, client, started.id, None, extra)


def run_wait(ctx: Context, ns: argparse.Namespace) -> int:
    timeout = parse_duration(ns.timeout) if ns.timeout else None
    with ctx.client() as client:
        return wait_and_report(ctx, client, ns.crawl_id, timeout, {})


def wait_and_report(
    ctx: Context, client: Client, crawl_id: int, timeout: float | None, extra: Mapping[str, object]
) -> int:
    """Waits for the crawl with a progress line; prints how it ended. Exit 0 finished, 3 cancelled,
    4 timeout, 130 when interrupted (the crawl goes on)."""
    progress = ctx.progress(f"crawl {crawl_id}")

    def show(crawl: crawls_pb2.Crawl) -> None:
        done = crawl.succeeded + crawl.failed
        extra_text = job_counts(crawl)
        progress.update(done, jobs_total(crawl) or None, extra_text, force=True, speed=speed(crawl))

    timed_out = False
    try:
        crawl = client.wait_crawl(crawl_id, timeout=timeout, on_progress=show)
    except CrawlWaitTimeout as error:
        # Before the first message (--timeout 0): the crawl as it is now.
        timed_out, crawl = True, error.crawl or client.get_crawl(crawl_id)
    except KeyboardInterrupt:
        progress.finish()
        ctx.err(
            f"crawlfleet: stopped waiting; crawl {crawl_id} goes on "
            f"(crawlfleet crawl status {crawl_id}, crawlfleet crawl cancel {crawl_id})"
        )
        return EXIT_INTERRUPTED
    finally:
        progress.finish()
    if ctx.settings.json:
        state = crawl_state_name(crawl.state)
        ctx.json({**extra, "timed_out": timed_out, "state": state, "crawl": message_dict(crawl)})
    else:
        verdict = f"timed out after {format_duration(timeout or 0)}: " if timed_out else ""
        ctx.out(verdict + ended_line(crawl))
        ctx.out()
        ctx.out(status_report(crawl, dt.datetime.now(dt.UTC)))
    if timed_out:
        return EXIT_TIMEOUT
    return EXIT_JOBS_FAILED if crawl.state == crawls_pb2.CRAWL_STATE_CANCELLED else EXIT_OK


def run_status(ctx: Context, ns: argparse.Namespace) -> int:
    with ctx.client() as client:
        crawl = client.get_crawl(ns.crawl_id)
    if ctx.settings.json:
        ctx.json(message_dict(crawl))
    else:
        ctx.out(status_report(crawl, dt.datetime.now(dt.UTC)))
    return EXIT_OK


def run_list(ctx: Context, ns: argparse.Namespace) -> int:
    limit = None if ns.all else ns.limit
    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    crawls: list[crawls_pb2.Crawl] = []
    token = ""
    with ctx.client() as client:
        while True:
            size = MAX_CRAWL_PAGE_SIZE if limit is None else min(MAX_CRAWL_PAGE_SIZE, limit - len(crawls))
            page = client.list_crawls(page_size=size, page_token=token)
            crawls.extend(page.crawls)
            token = page.next_page_token
            if not token or (limit is not None and len(crawls) >= limit):
                break
    if ctx.settings.json:
        ctx.json({"crawls": [message_dict(c) for c in crawls], "next_page_token": token})
        return EXIT_OK
    if not crawls:
        ctx.out("no crawls")
        return EXIT_OK
    ctx.out(list_table(crawls, dt.datetime.now(dt.UTC)))
    if token:
        ctx.out(f"(first {len(crawls)}; there are more: --limit N or --all)")
    return EXIT_OK


def run_cancel(ctx: Context, ns: argparse.Namespace) -> int:
    with ctx.client() as client:
        outcome = client.cancel_crawl(ns.crawl_id)
    cancelled = outcome.state is CrawlState.CANCELLED
    if ctx.settings.json:
        ctx.json(
            {
                "crawl_id": ns.crawl_id,
                "state": outcome.state.value,
                "cancelled_jobs": outcome.cancelled_jobs,
                "stopping_jobs": outcome.stopping_jobs,
            }
        )
    elif cancelled:
        ctx.out(
            f"crawl {ns.crawl_id}: cancelled; {outcome.cancelled_jobs} queued job(s) cancelled, "
            f"{outcome.stopping_jobs} leased job(s) stop at their next heartbeat"
        )
    else:
        ctx.out(f"crawl {ns.crawl_id}: not cancelled: it already {outcome.state.value}")
    return EXIT_OK if cancelled else EXIT_FAILED
