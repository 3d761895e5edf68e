"""Where to look after ``crawlfleet demo``: the commands to try, on the demo's coordinator while it
keeps running, or on a coordinator started again on the same data."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from crawlfleet.cli.fleet import LocalFleet

DEFAULT_ADDRESS = "127.0.0.1:50051"


def keep_running(
    say: Callable[[str], None],
    address: str,
    first_id: int,
    crawl_id: int | None,
    fleet: LocalFleet,
    dashboard_url: str | None,
) -> None:
    say(f"\nthe coordinator keeps serving on {address} until Ctrl-C; try:")
    if dashboard_url:
        say(f"  open {dashboard_url} in a browser    # the dashboard")
    for line in example_commands(address, first_id, crawl_id, with_flag=True):
        say("  " + line)
    for name, url in fleet.metrics_urls().items():
        say(f"  curl {url}    # {name} metrics")
    try:
        while not fleet.exited():
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("")


def look_next(ns: argparse.Namespace, first_id: int, crawl_id: int | None) -> list[str]:
    where = (
        f"--database-url {ns.database_url}" if ns.database_url else (f"--data-dir {ns.data_dir}" if ns.data_dir else "")
    )
    serve = f"{bin_prefix()}crawlfleet-coordinator serve {where}".rstrip()
    return [
        "where to look next: the data stays in the database. Start a coordinator on it",
        f"  {serve}    # listens on {DEFAULT_ADDRESS}",
        "then, in another terminal:",
        *("  " + line for line in example_commands(DEFAULT_ADDRESS, first_id, crawl_id, with_flag=False)),
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


def export_command(address: str | None, crawl_id: int) -> str:
    """How to export the crawl's pages as JSON lines."""
    flag = f" --coordinator {address}" if address else ""
    return f"{bin_prefix()}crawlfleet{flag} export --crawl {crawl_id} --output shop.jsonl"


def example_commands(address: str, first_id: int, crawl_id: int | None, *, with_flag: bool) -> list[str]:
    cli = bin_prefix() + (f"crawlfleet --coordinator {address}" if with_flag else "crawlfleet")
    results = [f"{cli} export --output results.jsonl"]
    if crawl_id is not None:
        results = [f"{cli} crawl status {crawl_id}", export_command(address if with_flag else None, crawl_id)]
    return [
        f"{cli} stats",
        *results,
        f"{cli} hosts list",
        f"{cli} jobs list --kind scrape --limit 10",
        f"{cli} jobs show {first_id}",
        f"{cli} dead list",
        f"buf curl --protocol grpc --http2-prior-knowledge http://{address}/crawlfleet.v1.Admin/GetQueueStats",
        f"grpcurl -plaintext {address} crawlfleet.v1.Admin/GetQueueStats",
        f"grpcurl -plaintext -d '{{\"job_id\": {first_id}}}' {address} crawlfleet.v1.Admin/GetJob",
    ]
