"""What a finish NOTIFY costs the Complete path: single-job completes with the notify off and on.

    python bench/notify.py [--connections 16] [--seconds 3] [--rounds 3] [--jobs 100000]

Uses DATABASE_URL's server if set, else the embedded PostgreSQL in .crawlfleet/bench-pg, and a fresh
migrated database for the run (dropped at the end). N noop jobs are enqueued and leased with the
queue's own statements; then, for --rounds rounds, C connections complete leased jobs one per
statement (job_complete_if_leased_many, each its own commit, as a worker with one slot would) for
--seconds with no coordinator registered in job_watchers (`off`: no notify), then with one (`on`:
every commit sends NOTIFY crawlfleet_jobs_finished), while one connection LISTENs as a coordinator's
would. The modes alternate so that noise from the rest of the host falls on both.

Progress goes to stdout; the last line is one JSON object with completes/s per mode and round.
"""

# ruff: noqa: E402 (sys.path is fixed before the imports, see below)

from __future__ import annotations

import sys
from pathlib import Path

# See bench/queue.py: bench/ first on sys.path would shadow the stdlib `queue`.
REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [str(REPO) if Path(p or ".").resolve() == REPO / "bench" else p for p in sys.path]

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Iterator

import asyncpg

from bench.queue import create_bench_database, drop_bench_database, say
from crawlfleet.coordinator.storage import sql
from crawlfleet.coordinator.storage.migrate import migrate
from crawlfleet.coordinator.storage.watch import FINISHED_CHANNEL
from crawlfleet.v1 import jobs_pb2

ENQUEUE_BATCH = 10_000
LEASE_BATCH = 1000
LEASE_MS = 3_600_000  # no lease runs out during the run
NOOP_RESULT = jobs_pb2.JobResult(noop=jobs_pb2.NoopResult()).SerializeToString()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=16, help="concurrent completing connections (C)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each measurement")
    parser.add_argument("--rounds", type=int, default=3, help="off/on pairs")
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs leased up front (N)")
    return parser.parse_args()


async def lease_jobs(conn: asyncpg.Connection, count: int) -> list[tuple[int, uuid.UUID]]:
    """Enqueue and lease `count` noop jobs with the queue's statements; (id, lease token) each."""
    spec = jobs_pb2.JobSpec(noop=jobs_pb2.NoopSpec()).SerializeToString()
    for offset in range(0, count, ENQUEUE_BATCH):
        n = min(ENQUEUE_BATCH, count - offset)
        await conn.execute(
            sql.query("job_enqueue_many"),
            ["noop"] * n,
            [0] * n,
            [spec] * n,
            [None] * n,
            [None] * n,
            [None] * n,
            [1] * n,
            [1000] * n,
            [2.0] * n,
            [1000] * n,
            None,
        )
    leased: list[tuple[int, uuid.UUID]] = []
    while len(leased) < count:
        rows = await conn.fetch(sql.query("job_lease_available"), "bench", LEASE_BATCH, [], LEASE_MS, None)
        if not rows:
            break
        leased.extend((row["id"], row["lease_token"]) for row in rows)
    return leased


async def complete_for(dsn: str, jobs: Iterator[tuple[int, uuid.UUID]], connections: int, seconds: float) -> float:
    """Completes per second over `seconds`, one job per statement from `connections` connections."""
    conns = [await asyncpg.connect(dsn) for _ in range(connections)]
    done = 0
    deadline = time.monotonic() + seconds

    async def complete_loop(conn: asyncpg.Connection) -> None:
        nonlocal done
        statement = await conn.prepare(sql.query("job_complete_if_leased_many"))
        for job_id, token in jobs:
            await statement.fetch([job_id], [token], [NOOP_RESULT], None)
            done += 1
            if time.monotonic() >= deadline:
                return

    started = time.monotonic()
    try:
        await asyncio.gather(*(complete_loop(conn) for conn in conns))
    finally:
        for conn in conns:
            await conn.close()
    return done / (time.monotonic() - started)


async def run(args: argparse.Namespace) -> dict[str, object]:
    admin_dsn, db_name, dsn, _ = await create_bench_database("crawlfleet_bench_notify")
    try:
        conn = await asyncpg.connect(dsn)
        heard = 0

        def on_notify(*_: object) -> None:
            nonlocal heard
            heard += 1

        try:
            await migrate(conn)
            leased = await lease_jobs(conn, args.jobs)
            say(f"{len(leased)} jobs leased")
            await conn.add_listener(FINISHED_CHANNEL, on_notify)
            jobs = iter(leased)
            rates: dict[str, list[float]] = {"off": [], "on": []}
            for round_ in range(args.rounds):
                for mode in ("off", "on"):
                    await conn.execute("DELETE FROM job_watchers")
                    if mode == "on":
                        await conn.execute(sql.query("job_watcher_register"), uuid.uuid4(), LEASE_MS)
                    rate = await complete_for(dsn, jobs, args.connections, args.seconds)
                    rates[mode].append(round(rate, 1))
                    say(f"round {round_ + 1} notify {mode:3s}: {rate:,.0f} completes/s")
        finally:
            await conn.close()
        return {
            "connections": args.connections,
            "seconds": args.seconds,
            "completes_per_s_off": rates["off"],
            "completes_per_s_on": rates["on"],
            "median_off": statistics.median(rates["off"]),
            "median_on": statistics.median(rates["on"]),
            "notifies_heard": heard,
        }
    finally:
        await drop_bench_database(admin_dsn, db_name)


def main() -> None:
    args = parse_args()
    if min(args.connections, args.rounds, args.jobs) < 1 or args.seconds <= 0:
        sys.exit("--connections, --rounds, --jobs and --seconds must be positive")
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
