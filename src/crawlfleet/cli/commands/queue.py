"""``crawlfleet stats``, ``health`` and ``workers``: the state of the queue and of the fleet."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence

from crawlfleet.cli.context import Context
from crawlfleet.cli.errors import EXIT_FAILED, EXIT_OK
from crawlfleet.cli.render import STATES, ago, format_duration, message_dict, parse_duration, state_name, table
from crawlfleet.v1 import admin_pb2

DEFAULT_SEEN_WITHIN = "5m"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stats = commands.add_parser("stats", help="jobs by state, and by kind and state")
    stats.set_defaults(run=run_stats)
    health = commands.add_parser(
        "health",
        help="what is stuck: exit 1 when unhealthy",
        description="Queue health. Exit status 1 (unhealthy) when leases have expired without the reaper "
        "returning them, or when jobs are due and no worker has been seen within --workers-seen-within.",
    )
    health.add_argument("--expiring-within", default="10s", help="leases expiring within this count as soon")
    health.add_argument("--workers-seen-within", default=DEFAULT_SEEN_WITHIN, help="workers seen within this count")
    health.set_defaults(run=run_health)
    workers = commands.add_parser("workers", help="workers seen recently, with their leases in flight")
    workers.add_argument("--seen-within", default=DEFAULT_SEEN_WITHIN, help=f"default {DEFAULT_SEEN_WITHIN}")
    workers.set_defaults(run=run_workers)


def run_stats(ctx: Context, ns: argparse.Namespace) -> int:
    with ctx.client() as client:
        stats = client.stats()
    totals = stats.states
    kinds = {kind: {s: counts.get(s, 0) for s in STATES} for kind, counts in stats.kinds.items()}
    if ctx.settings.json:
        ctx.json({"states": {s: totals.get(s, 0) for s in STATES}, "kinds": kinds})
        return EXIT_OK
    ctx.out(table(["STATE", "JOBS"], [(s, totals.get(s, 0)) for s in STATES], right=[1]))
    if kinds:
        ctx.out()
        rows = [(kind, *(counts[s] for s in STATES)) for kind, counts in sorted(kinds.items())]
        ctx.out(table(["KIND", *(s.upper() for s in STATES)], rows, right=range(1, len(STATES) + 1)))
    return EXIT_OK


def health_problems(health: admin_pb2.GetQueueHealthResponse) -> list[str]:
    """Why the queue is unhealthy; empty when it is healthy."""
    problems = []
    if health.leases_expired:
        problems.append(
            f"{health.leases_expired} lease(s) expired and not yet returned to the queue: is the reaper running?"
        )
    if health.due and not health.workers:
        problems.append(f"{health.due} job(s) due and no worker seen recently")
    return problems


def run_health(ctx: Context, ns: argparse.Namespace) -> int:
    expiring_within = parse_duration(ns.expiring_within)
    workers_seen_within = parse_duration(ns.workers_seen_within)
    with ctx.client() as client:
        health = client.health(expiring_within=expiring_within, workers_seen_within=workers_seen_within)
    problems = health_problems(health)
    oldest = health.oldest_due_age.ToNanoseconds() / 1e9
    if ctx.settings.json:
        ctx.json(
            {
                "healthy": not problems,
                "problems": problems,
                "states": {state_name(s.state): s.count for s in health.states},
                "due": health.due,
                "oldest_due_age_seconds": oldest,
                "leases_expiring_soon": health.leases_expiring_soon,
                "leases_expired": health.leases_expired,
                "dead": health.dead,
                "workers": [message_dict(w) for w in health.workers],
            }
        )
        return EXIT_FAILED if problems else EXIT_OK
    states = ", ".join(f"{state_name(s.state)} {s.count}" for s in health.states)
    in_flight = sum(w.in_flight for w in health.workers)
    rows = [
        ("jobs", states),
        ("due now", f"{health.due} (oldest waiting {format_duration(oldest)})" if health.due else "0"),
        ("leases expiring soon", health.leases_expiring_soon),
        ("leases expired", health.leases_expired),
        ("dead", f"{health.dead}" + ("  (crawlfleet dead list)" if health.dead else "")),
        ("workers seen", f"{len(health.workers)} ({in_flight} job(s) in flight)"),
    ]
    ctx.out(table(None, rows))
    ctx.out()
    ctx.out("status: " + ("UNHEALTHY\n  " + "\n  ".join(problems) if problems else "healthy"))
    return EXIT_FAILED if problems else EXIT_OK


def run_workers(ctx: Context, ns: argparse.Namespace) -> int:
    seen_within = parse_duration(ns.seen_within)
    with ctx.client() as client:
        workers = client.list_workers(seen_within=seen_within)
    if ctx.settings.json:
        ctx.json({"workers": [message_dict(w) for w in workers]})
        return EXIT_OK
    if not workers:
        ctx.out(f"no worker seen within {ns.seen_within}")
        return EXIT_OK
    ctx.out(worker_table(workers, dt.datetime.now(dt.UTC)))
    return EXIT_OK


def worker_table(workers: Sequence[admin_pb2.WorkerStatus], now: dt.datetime) -> str:
    rows = [
        (
            w.worker_id,
            w.host,
            w.version,
            ",".join(w.kinds) or "all",
            w.in_flight,
            w.slots or "-",  # 0: the worker does not report its slots
            ago(w.first_seen_at, now),
            ago(w.last_seen_at, now),
        )
        for w in workers
    ]
    return table(
        ["WORKER", "HOST", "VERSION", "KINDS", "IN FLIGHT", "SLOTS", "FIRST SEEN", "LAST SEEN"], rows, right=[4, 5]
    )
