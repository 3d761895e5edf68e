"""What the readers of attempts' finish times pay for `job_attempts_finished_at`'s form.

    python bench/attempt_finish_readers.py [--attempts 1000000] [--days 7] [--calls 20] [--rounds 3]

The index is BRIN (migration 0022) so that closing an attempt is a HOT update; it was a partial
B-tree. Its reader over many rows is the activity chart (queue_activity_by_minute: the last hour,
and the last day, by minute); a crawl's rate reads the last minute the same way. On a fresh database (DATABASE_URL's
server, else the embedded one): N finished jobs with one finished attempt each, written in time
order over the last --days days as the queue appends them, then VACUUM ANALYZE. Each round times
--calls calls of each reader with the BRIN index, then with the B-tree in its place, then BRIN
again (rebuilt), and prints the medians in ms and the shared buffers one call touched. The last
line is one JSON object with every round and the medians of the rounds.
"""

# ruff: noqa: E402 (sys.path is fixed before the imports, as in bench/queue.py)

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [str(REPO) if Path(p or ".").resolve() == REPO / "bench" else p for p in sys.path]

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import asyncpg

from bench.queue import create_bench_database, drop_bench_database
from crawlfleet.coordinator.storage.migrate import migrate
from crawlfleet.coordinator.storage.sql import query

# $1: how many, $2: over how many days, ending now; in id (and so time) order.
INSERT_JOBS = """
INSERT INTO jobs (kind, state, spec, run_at, created_at, attempt, max_attempts, retry_initial_ms, retry_multiplier,
                  retry_max_ms, lease_token, finished_at, result)
SELECT 'noop', 'succeeded', '\\x'::bytea, t, t, 1, 3, 1000, 2, 60000, gen_random_uuid(), t, '\\x'::bytea
FROM (SELECT now() - ($2::float8 * 86400 * (1 - n::float8 / $1)) * interval '1 second' AS t
      FROM generate_series(1, $1::integer) AS n) AS times
"""
INSERT_ATTEMPTS = """
INSERT INTO job_attempts (job_id, attempt, lease_token, worker_id, started_at, finished_at, outcome)
SELECT id, 1, lease_token, 'bench', finished_at - interval '50 milliseconds', finished_at, 'succeeded'
FROM jobs ORDER BY id
"""
BTREE = "CREATE INDEX job_attempts_finished_at ON job_attempts (finished_at) WHERE finished_at IS NOT NULL"
BRIN = """CREATE INDEX job_attempts_finished_at ON job_attempts
    USING brin (finished_at timestamptz_minmax_multi_ops) WITH (pages_per_range = 32, autosummarize = on)"""
READERS = {
    "activity_hour": ("queue_activity_by_minute", "(now() - interval '1 hour')", "now()"),
    "activity_day": ("queue_activity_by_minute", "(now() - interval '1 day')", "now()"),
}


def with_literals(query_name: str, first: str, second: str) -> str:
    """The named query with its two parameters written in, so EXPLAIN can run it as is."""
    return query(query_name).rstrip().rstrip(";").replace("$1", first).replace("$2", second)


async def use_index(conn: asyncpg.Connection, create: str) -> None:
    await conn.execute("DROP INDEX job_attempts_finished_at")
    await conn.execute(create)
    await conn.execute("ANALYZE job_attempts")


async def time_readers(conn: asyncpg.Connection, calls: int) -> dict[str, float]:
    """Median ms of each reader over `calls` prepared calls, and the buffers of one."""
    figures: dict[str, float] = {}
    for name, (query_name, first, second) in READERS.items():
        text = with_literals(query_name, first, second)
        statement = await conn.prepare(text)
        timings = []
        for _ in range(calls + 2):  # two warm-ups
            started = time.perf_counter()
            await statement.fetch()
            timings.append((time.perf_counter() - started) * 1000)
        figures[f"{name}_ms"] = round(statistics.median(timings[2:]), 3)
        plan = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {text}"))[0]["Plan"]
        figures[f"{name}_buffers"] = plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)
    return figures


async def one_round(dsn: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute(INSERT_JOBS, args.attempts, args.days)
        await conn.execute(INSERT_ATTEMPTS)
        await conn.execute("VACUUM ANALYZE jobs")
        await conn.execute("VACUUM ANALYZE job_attempts")
        brin = await time_readers(conn, args.calls)
        await use_index(conn, BTREE)
        btree = await time_readers(conn, args.calls)
        await use_index(conn, BRIN)
        brin_again = await time_readers(conn, args.calls)
    finally:
        await conn.close()
    return {"brin": brin, "btree": btree, "brin_again": brin_again}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rounds = []
    for n in range(args.rounds):
        admin_dsn, db_name, dsn, _ = await create_bench_database("attempt_readers")
        try:
            figures = await one_round(dsn, args)
        finally:
            await drop_bench_database(admin_dsn, db_name)
        print(f"round {n + 1}: {figures}", flush=True)
        rounds.append(figures)
    medians = {
        form: {key: statistics.median(r[form][key] for r in rounds) for key in rounds[0][form]} for form in rounds[0]
    }
    return {"attempts": args.attempts, "days": args.days, "calls": args.calls, "rounds": rounds, "median": medians}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attempts", type=int, default=1_000_000, help="finished jobs, one attempt each")
    parser.add_argument("--days", type=float, default=7.0, help="the history's span, ending now")
    parser.add_argument("--calls", type=int, default=20, help="timed calls of each reader per index form")
    parser.add_argument("--rounds", type=int, default=3)
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
