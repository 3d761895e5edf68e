"""``crawlfleet demo``: a coordinator, two workers and the built-in demo shop, with progress and a summary.

With URLs it scrapes those instead of the demo site (and the workers keep refusing loopback and
private addresses), within the fleet's default politeness. The demo shop is our own: a host
policy lets every worker slot fetch from it at once, without a delay.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import os
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from crawlfleet.cli.client import open_client
from crawlfleet.cli.commands.hosts import host_table
from crawlfleet.cli.context import Context
from crawlfleet.cli.errors import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, CliError
from crawlfleet.cli.fleet import LocalFleet
from crawlfleet.cli.render import STATES, TERMINAL_STATES, format_duration, message_dict, state_name
from crawlfleet.cli.settings import CliSettings
from crawlfleet.cli.summary import RunSummary, summarize, summary_lines
from crawlfleet.client import Client, ClientError, NotFound, ScrapeJob
from crawlfleet.common.hosts import host_of
from crawlfleet.common.urls import InvalidURL, normalize_url
from crawlfleet.demo import DemoSite, demo_urls
from crawlfleet.v1 import admin_pb2, jobs_pb2

DEFAULT_LOG_DIR = Path(".crawlfleet/demo-logs")
DEFAULT_TIMEOUT = 300.0
WORKERS = 2
SLOTS = 4
POLL = 0.25
PLAIN_PROGRESS_INTERVAL = 2.0  # seconds between progress lines when stderr is not a terminal
STALL_WARNING = 30.0  # seconds without any change before the demo shows what the processes complain about
DEFAULT_ADDRESS = "127.0.0.1:50051"
# The summary shows at most this many hosts (`crawlfleet hosts list` has them all).
SUMMARY_HOSTS = 10
DEMO_POLICY_NOTE = "crawlfleet demo: our own demo shop, as fast as the workers go"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="run a coordinator and two workers on the built-in demo site (or on URLs), then summarize",
        description="Starts a coordinator, two workers and the built-in demo shop, scrapes the shop with "
        "progress and prints a summary of what was stored; then stops everything with SIGTERM. With URLs it "
        "scrapes those instead (the workers then refuse loopback and private addresses). See docs/cli.md.",
    )
    demo.add_argument("urls", nargs="*", metavar="URL", help="scrape these instead of the demo site")
    demo.add_argument("--database-url", help="PostgreSQL DSN for the coordinator (default: the embedded server)")
    demo.add_argument("--data-dir", type=Path, help="data directory of the embedded PostgreSQL (coordinator default)")
    demo.add_argument("--log-dir", type=Path, default=DEFAULT_LOG_DIR, help=f"process logs (default {DEFAULT_LOG_DIR})")
    demo.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds the jobs get to finish")
    demo.add_argument("--keep-running", action="store_true", help="after the summary, keep serving until Ctrl-C")
    demo.set_defaults(run=run_demo)


@dataclasses.dataclass(frozen=True)
class DemoRun:
    address: str
    first_id: int
    summary: RunSummary
    unfinished: int
    hosts: list[admin_pb2.Host]


def run_demo(ctx: Context, ns: argparse.Namespace) -> int:
    say = ctx.err if ctx.settings.json else ctx.out  # with --json, stdout carries the summary only
    fleet = LocalFleet(ns.log_dir)
    try:
        with _sigterm_as_interrupt():
            run = scrape(ctx, ns, fleet, say)
    finally:
        if fleet.processes:
            say("stopping the workers and the coordinator (SIGTERM)...")
        codes = fleet.stop()
        say(f"stopped: {', '.join(f'{name} exited {code}' for name, code in codes.items())}")
    if ctx.settings.json:
        hosts = [message_dict(h) for h in run.hosts]
        ctx.json({**run.summary.as_json(), "hosts": hosts, "coordinator": run.address, "exit_codes": codes})
    elif not ns.keep_running:
        say("")
        for line in look_next(ns, run.first_id):
            say(line)
    if any(code != 0 for code in codes.values()):
        raise CliError(f"a process did not exit cleanly; see the logs in {ns.log_dir}/", EXIT_FAILED)
    return EXIT_TIMEOUT if run.unfinished else EXIT_OK


def scrape(ctx: Context, ns: argparse.Namespace, fleet: LocalFleet, say: Callable[[str], None]) -> DemoRun:
    """Starts the processes (and the demo site), runs the jobs and prints the summary."""
    started = time.monotonic()
    say("starting the coordinator (embedded PostgreSQL unless --database-url; the first start initializes it)...")
    coordinator = fleet.coordinator(database_url=ns.database_url, data_dir=ns.data_dir)
    site = DemoSite() if not ns.urls else None
    try:
        urls = demo_urls(site.start(), site.catalogue) if site else list(ns.urls)  # while the coordinator starts
        address = fleet.address_of(coordinator)
        for n in range(1, WORKERS + 1):
            fleet.worker(f"demo-worker-{n}", address, slots=SLOTS, allow_loopback=site is not None)
        dashboard = fleet.dashboard(address)
        source = f"the demo shop at {site.base}" if site else "the given URLs"
        say(f"coordinator on {address}, {WORKERS} workers x {SLOTS} slots; scraping {source}; logs in {ns.log_dir}/")
        dashboard_url = fleet.dashboard_url(dashboard)
        say(f"dashboard on {dashboard_url}" if dashboard_url else f"the dashboard did not start; see {dashboard.log}")
        # The demo's own coordinator: plain loopback, no token.
        settings = CliSettings(coordinator=address, json=ctx.settings.json, call_timeout=ctx.settings.call_timeout)
        with open_client(settings) as client:
            own = host_of(normalize_url(site.base)) if site else None
            try:
                if own is not None:
                    client.set_host_policy(
                        own, max_concurrency=WORKERS * SLOTS, delay=0, obey_robots=False, note=DEMO_POLICY_NOTE
                    )
                    say(f"host policy for {own}: {WORKERS * SLOTS} leases at once, no delay (our own site)")
                ids = [job.id for job in client.enqueue_many(ScrapeJob(url=u, render="auto") for u in urls)]
                say(f"enqueued {len(ids)} scrape jobs (render auto)")
                jobs = follow(ctx, client, ids, started + ns.timeout, fleet)
                hosts, more_hosts = hosts_of_run(client, urls)
            finally:
                if own is not None:
                    forget_policy(client, own)
        summary = summarize(jobs.values(), time.monotonic() - started)
        unfinished = summary.jobs - sum(summary.states.get(s, 0) for s in TERMINAL_STATES)
        if not ctx.settings.json:
            say("\nsummary:")
            for line in summary_lines(summary, _expected(site) if site else None):
                say(line)
            if unfinished:
                say(f"  {unfinished} job(s) had not finished after {format_duration(ns.timeout)} (--timeout)")
            if hosts:
                say("\nhosts:")
                for line in host_table(hosts, dt.datetime.now(dt.UTC)).splitlines():
                    say("  " + line)
                if more_hosts:
                    say(f"  ... and {more_hosts} more (crawlfleet hosts list)")
        if ns.keep_running:
            keep_running(say, address, min(ids), fleet, dashboard_url)
    finally:
        if site is not None:
            site.stop()
    return DemoRun(address, min(ids), summary, unfinished, hosts)


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


def forget_policy(client: Client, host: str) -> None:
    """The demo site's next run has another port, so another host: its policy goes with this run."""
    with contextlib.suppress(ClientError):  # the coordinator may be gone (Ctrl-C, a crash)
        client.clear_host_policy(host)


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


def follow(ctx: Context, client: Client, ids: list[int], deadline: float, fleet: LocalFleet) -> dict[int, jobs_pb2.Job]:
    """Polls the jobs until all are finished (or the deadline), showing progress on stderr."""
    jobs: dict[int, jobs_pb2.Job] = {}
    pending = list(ids)
    progress = ctx.progress("jobs")
    last_line, last_printed = "", 0.0
    changed, seen, stalled = time.monotonic(), "", False
    while True:
        for job_id in pending:  # a finished job is read once more, with its result, and no more
            jobs[job_id] = client.get_job(job_id)
        pending = [i for i in pending if state_name(jobs[i].state) not in TERMINAL_STATES]
        states = Counter(state_name(j.state) for j in jobs.values())
        line = ", ".join(f"{states[s]} {s}" for s in STATES if states[s])
        progress.update(len(ids) - len(pending), len(ids), line, force=True)
        now = time.monotonic()
        if (
            not progress.enabled
            and line != last_line
            and (not pending or now - last_printed >= PLAIN_PROGRESS_INTERVAL)
        ):
            ctx.err(f"progress: {len(ids) - len(pending)}/{len(ids)} finished: {line}")
            last_line, last_printed = line, now
        if line != seen:
            changed, seen = now, line
        elif not stalled and now - changed > STALL_WARNING:
            stalled = True
            progress.finish()
            ctx.err(f"no progress for {STALL_WARNING:.0f}s; what the processes last complained about:")
            for process in fleet.processes:
                ctx.err(f"  {process.name}: {process.last_problem() or '(nothing)'}")
        if not pending or now >= deadline:
            progress.finish()
            return jobs
        if exited := fleet.exited():
            progress.finish()
            gone = exited[0]
            raise CliError(f"{gone.name} exited with status {gone.popen.returncode}; see {gone.log}:\n{gone.tail()}")
        time.sleep(POLL)


def keep_running(
    say: Callable[[str], None], address: str, first_id: int, fleet: LocalFleet, dashboard_url: str | None
) -> None:
    say(f"\nthe coordinator keeps serving on {address} until Ctrl-C; try:")
    if dashboard_url:
        say(f"  open {dashboard_url} in a browser    # the dashboard")
    for line in example_commands(address, first_id, with_flag=True):
        say("  " + line)
    for name, url in fleet.metrics_urls().items():
        say(f"  curl {url}    # {name} metrics")
    try:
        while not fleet.exited():
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("")


def look_next(ns: argparse.Namespace, first_id: int) -> list[str]:
    where = (
        f"--database-url {ns.database_url}" if ns.database_url else (f"--data-dir {ns.data_dir}" if ns.data_dir else "")
    )
    serve = f"{bin_prefix()}crawlfleet-coordinator serve {where}".rstrip()
    return [
        "where to look next: the data stays in the database. Start a coordinator on it",
        f"  {serve}    # listens on {DEFAULT_ADDRESS}",
        "then, in another terminal:",
        *("  " + line for line in example_commands(DEFAULT_ADDRESS, first_id, with_flag=False)),
        "or run `crawlfleet demo --keep-running` to keep this demo's coordinator up.",
        f"process logs: {ns.log_dir}/",
    ]


def bin_prefix() -> str:
    """How to call the console scripts from here: bare when on PATH, else by their directory."""
    bindir = Path(sys.executable).parent
    if shutil.which("crawlfleet") or not (bindir / "crawlfleet").exists():
        return ""
    relative = os.path.relpath(bindir)
    return (str(bindir) if relative.startswith("..") else relative) + "/"


def example_commands(address: str, first_id: int, *, with_flag: bool) -> list[str]:
    cli = bin_prefix() + (f"crawlfleet --coordinator {address}" if with_flag else "crawlfleet")
    return [
        f"{cli} stats",
        f"{cli} hosts list",
        f"{cli} jobs list --kind scrape --limit 10",
        f"{cli} jobs show {first_id}",
        f"{cli} dead list",
        f"{cli} export --output results.jsonl",
        f"buf curl --protocol grpc --http2-prior-knowledge http://{address}/crawlfleet.v1.Admin/GetQueueStats",
        f"grpcurl -plaintext {address} crawlfleet.v1.Admin/GetQueueStats",
        f"grpcurl -plaintext -d '{{\"job_id\": {first_id}}}' {address} crawlfleet.v1.Admin/GetJob",
    ]


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
