"""``crawlfleet demo``: a coordinator, two workers and the built-in demo shop, crawled from its home
page with live progress, then a summary; with URLs, those are scraped instead.

The steps are separate (start the processes, do the work, sum up, say where to look next), so a
further part of the demo (a dashboard) is one more step beside the workers. With URLs the workers
keep refusing loopback and private addresses, and the fleet's default politeness applies.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from crawlfleet.cli.client import open_client
from crawlfleet.cli.commands.hosts import host_table
from crawlfleet.cli.context import Context
from crawlfleet.cli.demo.crawl import MAX_DEPTH, crawl_jobs, crawl_lines, demo_crawl, follow_crawl, site_lines
from crawlfleet.cli.demo.jobs import enqueue_urls, follow_jobs
from crawlfleet.cli.demo.next_steps import export_command, keep_running, look_next
from crawlfleet.cli.demo.waiting import Waiting
from crawlfleet.cli.errors import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, CliError
from crawlfleet.cli.fleet import LocalFleet
from crawlfleet.cli.render import TERMINAL_STATES, format_duration, message_dict
from crawlfleet.cli.settings import CliSettings
from crawlfleet.cli.summary import RunSummary, summarize, summary_lines
from crawlfleet.client import Client, ClientError, NotFound
from crawlfleet.common.hosts import host_of
from crawlfleet.common.urls import InvalidURL, normalize_url
from crawlfleet.demo import DemoSite, crawl_seed
from crawlfleet.demo.urls import page_requests
from crawlfleet.v1 import admin_pb2, crawls_pb2, jobs_pb2

DEFAULT_LOG_DIR = Path(".crawlfleet/demo-logs")
DEFAULT_TIMEOUT = 300.0
WORKERS = 2
SLOTS = 4
# The summary shows at most this many hosts (`crawlfleet hosts list` has them all).
SUMMARY_HOSTS = 10


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="run a coordinator and two workers crawling the built-in demo site (or scraping URLs), then summarize",
        description="Starts a coordinator, two workers and the built-in demo shop, crawls the shop from its home "
        "page with live progress and prints a summary of what was found and stored; then stops everything with "
        "SIGTERM. With URLs it scrapes those instead (the workers then refuse loopback and private addresses). "
        "See docs/cli.md.",
    )
    demo.add_argument("urls", nargs="*", metavar="URL", help="scrape these instead of crawling the demo site")
    demo.add_argument("--database-url", help="PostgreSQL DSN for the coordinator (default: the embedded server)")
    demo.add_argument("--data-dir", type=Path, help="data directory of the embedded PostgreSQL (coordinator default)")
    demo.add_argument("--log-dir", type=Path, default=DEFAULT_LOG_DIR, help=f"process logs (default {DEFAULT_LOG_DIR})")
    demo.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds the work gets to finish")
    demo.add_argument("--keep-running", action="store_true", help="after the summary, keep serving until Ctrl-C")
    demo.set_defaults(run=run_demo)


class Work(NamedTuple):
    """What the demo did: its jobs (with results), the URLs they were for, the crawl if it crawled,
    and the lines of the summary that belong to the crawl."""

    jobs: list[jobs_pb2.Job]
    urls: list[str]
    crawl: crawls_pb2.Crawl | None
    lines: list[str]


@dataclasses.dataclass(frozen=True)
class DemoRun:
    address: str
    first_id: int
    crawl_id: int | None
    summary: RunSummary
    unfinished: int
    hosts: list[admin_pb2.Host]


def run_demo(ctx: Context, ns: argparse.Namespace) -> int:
    say = ctx.err if ctx.settings.json else ctx.out  # with --json, stdout carries the summary only
    fleet = LocalFleet(ns.log_dir)
    try:
        with _sigterm_as_interrupt():
            run = demonstrate(ctx, ns, fleet, say)
    finally:
        if fleet.processes:
            say("stopping the workers and the coordinator (SIGTERM)...")
        codes = fleet.stop()
        say(f"stopped: {', '.join(f'{name} exited {code}' for name, code in codes.items())}")
    if ctx.settings.json:
        hosts = [message_dict(h) for h in run.hosts]
        ctx.json(
            {
                **run.summary.as_json(),
                "crawl_id": run.crawl_id,
                "hosts": hosts,
                "coordinator": run.address,
                "exit_codes": codes,
            }
        )
    elif not ns.keep_running:
        say("")
        for line in look_next(ns, run.first_id, run.crawl_id):
            say(line)
    if any(code != 0 for code in codes.values()):
        raise CliError(f"a process did not exit cleanly; see the logs in {ns.log_dir}/", EXIT_FAILED)
    return EXIT_TIMEOUT if run.unfinished else EXIT_OK


def demonstrate(ctx: Context, ns: argparse.Namespace, fleet: LocalFleet, say: Callable[[str], None]) -> DemoRun:
    """Starts the processes (and the demo site), does the work, prints the summary."""
    started = time.monotonic()
    deadline = started + ns.timeout
    site = DemoSite() if not ns.urls else None
    try:
        address, dashboard_url = start_fleet(ns, fleet, site, say)
        # The demo's own coordinator: plain loopback, no token.
        settings = CliSettings(coordinator=address, json=ctx.settings.json, call_timeout=ctx.settings.call_timeout)
        with open_client(settings) as client:
            if site is not None:
                work = crawl_shop(ctx, client, site, deadline, fleet, say)
            else:
                work = scrape_urls(ctx, client, list(ns.urls), deadline, fleet, say)
            hosts, more_hosts = hosts_of_run(client, work.urls)
        summary = summarize(work.jobs, time.monotonic() - started)
        unfinished = summary.jobs - sum(summary.states.get(s, 0) for s in TERMINAL_STATES)
        if work.crawl is not None and work.crawl.state == crawls_pb2.CRAWL_STATE_RUNNING:
            unfinished = max(unfinished, 1)
        if not ctx.settings.json:
            say_summary(say, summary, work, site, unfinished, ns.timeout)
            say_hosts(say, hosts, more_hosts, after_crawl=work.crawl is not None)
        first_id = min((job.id for job in work.jobs), default=0)
        crawl_id = work.crawl.id if work.crawl is not None else None
        if ns.keep_running:
            keep_running(say, address, first_id, crawl_id, fleet, dashboard_url)
    finally:
        if site is not None:
            site.stop()
    return DemoRun(address, first_id, crawl_id, summary, unfinished, hosts)


def start_fleet(
    ns: argparse.Namespace, fleet: LocalFleet, site: DemoSite | None, say: Callable[[str], None]
) -> tuple[str, str | None]:
    """The coordinator, the demo site, the workers and the dashboard (every process of the demo
    starts here); the coordinator's address and the dashboard's (None when it did not start)."""
    say("starting the coordinator (embedded PostgreSQL unless --database-url; the first start initializes it)...")
    coordinator = fleet.coordinator(database_url=ns.database_url, data_dir=ns.data_dir)
    base = site.start() if site else None  # while the coordinator starts
    address = fleet.address_of(coordinator)
    for n in range(1, WORKERS + 1):
        fleet.worker(f"demo-worker-{n}", address, slots=SLOTS, allow_loopback=site is not None)
    dashboard = fleet.dashboard(address)
    source = f"the demo shop at {base}" if base else "the given URLs"
    say(f"coordinator on {address}, {WORKERS} workers x {SLOTS} slots; {source}; logs in {ns.log_dir}/")
    dashboard_url = fleet.dashboard_url(dashboard)
    say(f"dashboard on {dashboard_url}" if dashboard_url else f"the dashboard did not start; see {dashboard.log}")
    return address, dashboard_url


def crawl_shop(
    ctx: Context, client: Client, site: DemoSite, deadline: float, fleet: LocalFleet, say: Callable[[str], None]
) -> Work:
    """Crawls the shop from its home page and follows the crawl to its end."""
    seed = crawl_seed(site.base)
    started = client.start_crawl(demo_crawl(seed, WORKERS * SLOTS))
    say(
        f"crawl {started.id}: from {seed}, following links on the shop up to depth {MAX_DEPTH} (render auto); "
        f"its own host policy lets {WORKERS * SLOTS} leases at once on the shop, without a delay (our own site), "
        "until it ends"
    )
    crawl: crawls_pb2.Crawl | None = None
    try:
        crawl = follow_crawl(client, started.id, deadline, Waiting(ctx, fleet, f"crawl {started.id}"))
    finally:
        if crawl is None or crawl.state == crawls_pb2.CRAWL_STATE_RUNNING:
            stop_crawl(client, started.id)  # interrupted or out of time: its host policy goes now
    assert crawl is not None  # follow_crawl returned, or its exception went on
    jobs = crawl_jobs(client, crawl, site.base)
    expected = site.expected()
    browser_pages = sum(p.js_rendered for p in site.catalogue.products)
    lines = crawl_lines(crawl, jobs, expected.offsite_links)
    lines += site_lines(site.target_hits, page_requests(site.catalogue), browser_pages)
    lines.append(f"  export its pages: {export_command(None, crawl.id)}  (with a coordinator on its data)")
    return Work(jobs, [seed], crawl, lines)


def stop_crawl(client: Client, crawl_id: int) -> None:
    with contextlib.suppress(ClientError):  # the coordinator may be gone (Ctrl-C, a crash)
        client.cancel_crawl(crawl_id)


def scrape_urls(
    ctx: Context, client: Client, urls: list[str], deadline: float, fleet: LocalFleet, say: Callable[[str], None]
) -> Work:
    ids = enqueue_urls(client, urls)
    say(f"enqueued {len(ids)} scrape jobs (render auto)")
    jobs = follow_jobs(client, ids, deadline, Waiting(ctx, fleet, "jobs"))
    return Work(list(jobs.values()), urls, None, [])


def say_summary(
    say: Callable[[str], None], summary: RunSummary, work: Work, site: DemoSite | None, unfinished: int, timeout: float
) -> None:
    say("\nsummary:")
    for line in summary_lines(summary, _expected(site) if site else None):
        say(line)
    if unfinished:
        say(f"  the work had not finished after {format_duration(timeout)} (--timeout)")
    if work.lines:
        say("")
    for line in work.lines:
        say(line)


def say_hosts(say: Callable[[str], None], hosts: list[admin_pb2.Host], more_hosts: int, *, after_crawl: bool) -> None:
    if not hosts:
        return
    # The crawl's politeness was a host policy of the crawl: the table shows the host without it.
    say("\nhosts (as now, the crawl's own host policy gone with it):" if after_crawl else "\nhosts:")
    for line in host_table(hosts, dt.datetime.now(dt.UTC)).splitlines():
        say("  " + line)
    if more_hosts:
        say(f"  ... and {more_hosts} more (crawlfleet hosts list)")


def hosts_of_run(client: Client, urls: list[str]) -> tuple[list[admin_pb2.Host], int]:
    """The hosts the run's URLs belong to (at most SUMMARY_HOSTS of them), and how many more there are."""
    names: list[str] = []
    for url in urls:
        try:
            names.append(host_of(normalize_url(url)))
        except InvalidURL:
            continue  # refused at enqueue already
    distinct = sorted(set(names))
    hosts = []
    for name in distinct[:SUMMARY_HOSTS]:
        with contextlib.suppress(NotFound):  # none of its jobs went in
            hosts.append(client.get_host(name))
    return hosts, max(0, len(distinct) - SUMMARY_HOSTS)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a supervisor, ``timeout``) stops the demo as Ctrl-C does: processes stopped in order."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (tests run commands in threads)
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _expected(site: DemoSite) -> dict[str, int]:
    want = site.expected()
    return {
        "pages_stored": want.succeeded,
        "rendered_in_browser": want.rendered_in_browser,
        "images_processed": want.image_results - want.image_failures,
        "images_failed": want.image_failures,
        "distinct_images": want.distinct_images,
        "dead": want.dead,
    }
