"""What a job costs PostgreSQL on the drain path, without gRPC or Python processes in the way.

    python bench/job_sql_cost.py [--jobs 20000] [--claim 200] [--complete 100] [--rounds 3]
                                 [--complete-without history,counted]

One connection on a fresh database (DATABASE_URL's server, else the embedded one): N hostless noop
jobs are inserted and analyzed, then claimed (job_lease_available, --claim jobs a call) and
completed (job_complete_if_leased_many, --complete jobs a call) in turn until none is left, as a
worker's Lease and Complete calls would. Per round, the backend's CPU (from /proc, so the
server must run on this host) split by statement, and the WAL it wrote, both per job. The last
line is one JSON object with every round and the medians.

--complete-without names parts of the complete statement to leave out, to weigh what each costs
(not to run the queue with): `history` (closing the attempt), `counted` (the per-state counts).
The attempt check at the end then looks for the attempts still running instead.
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
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from bench import procs
from bench.queue import HOSTLESS_SPEC, create_bench_database, drop_bench_database
from crawlfleet.coordinator.storage.migrate import migrate
from crawlfleet.coordinator.storage.sql import query
from crawlfleet.v1 import jobs_pb2

RESULT = jobs_pb2.JobResult(noop=jobs_pb2.NoopResult()).SerializeToString(deterministic=True)
LEASE_MS = 3_600_000  # no lease may run out during a round

INSERT_JOBS = """
INSERT INTO jobs (kind, spec, run_at, created_at, max_attempts, retry_initial_ms, retry_multiplier, retry_max_ms)
SELECT 'noop', $2::bytea, now(), now(), 3, 1000, 2, 60000 FROM generate_series(1, $1::integer)
"""
# The parts of job_complete_if_leased_many that nothing later in the statement reads: each is a
# CTE that runs up to the next one.
REMOVABLE = ("history", "counted")


def complete_without(sql: str, parts: list[str]) -> str:
    """The complete statement with the named CTEs cut out."""
    for part in parts:
        if part not in REMOVABLE:
            raise SystemExit(f"--complete-without: {part!r} is not one of {', '.join(REMOVABLE)}")
        start = sql.index(f"), {part} AS (")
        end = sql.index("\n), ", start + 1)
        sql = sql[:start] + sql[end + 1 :]
    return sql


WAL = "SELECT pg_current_wal_insert_lsn() AS lsn, (SELECT wal_records FROM pg_stat_wal) AS records"


async def wal_now(conn: asyncpg.Connection) -> asyncpg.Record:
    """The WAL position and records written so far. A backend reports its WAL records to
    pg_stat_wal at most once a second unless asked: ask first, so this session's count is in."""
    await conn.execute("SELECT pg_stat_force_next_flush()")
    row: asyncpg.Record | None = await conn.fetchrow(WAL)
    assert row is not None
    return row


# One claim of n jobs: its rows (with "id" and "lease_token"). One complete of some of them:
# the rows it completed.
Claim = Callable[[asyncpg.Connection, int], Awaitable[list[asyncpg.Record]]]
Complete = Callable[[asyncpg.Connection, list[asyncpg.Record]], Awaitable[list[asyncpg.Record]]]


async def claim_and_complete(
    conn: asyncpg.Connection, jobs: int, claim: int, complete: int, claim_some: Claim, complete_some: Complete
) -> dict[str, float]:
    """Claim and complete `jobs` jobs on `conn`, as a worker's Lease and Complete calls would; the
    backend's CPU per job by statement, the WAL it wrote per job, and the wall time."""
    backend = await conn.fetchval("SELECT pg_backend_pid()")
    spent = {"claim": 0.0, "complete": 0.0}
    before = await wal_now(conn)
    started = time.monotonic()
    done = 0
    while done < jobs:
        cpu = procs.cpu_seconds(backend)
        rows = await claim_some(conn, claim)
        spent["claim"] += procs.cpu_seconds(backend) - cpu
        if not rows:
            raise RuntimeError(f"nothing to claim after {done} of {jobs} jobs")
        for start in range(0, len(rows), complete):
            part = rows[start : start + complete]
            cpu = procs.cpu_seconds(backend)
            finished = await complete_some(conn, part)
            spent["complete"] += procs.cpu_seconds(backend) - cpu
            if len(finished) != len(part):
                raise RuntimeError("a complete did not complete its batch")
        done += len(rows)
    wall = time.monotonic() - started
    after = await wal_now(conn)
    wal_bytes = await conn.fetchval("SELECT pg_wal_lsn_diff($1, $2)", after["lsn"], before["lsn"])
    return {
        "claim_us_per_job": round(spent["claim"] / jobs * 1e6, 1),
        "complete_us_per_job": round(spent["complete"] / jobs * 1e6, 1),
        "backend_us_per_job": round((spent["claim"] + spent["complete"]) / jobs * 1e6, 1),
        "wal_bytes_per_job": round(float(wal_bytes) / jobs, 1),
        "wal_records_per_job": round((after["records"] - before["records"]) / jobs, 2),
        "wall_s": round(wall, 2),
    }


async def each_round(
    prefix: str, rounds: int, one_round: Callable[[str], Awaitable[dict[str, float]]]
) -> tuple[list[dict[str, float]], dict[str, float]]:
    """`one_round` on a fresh database per round (dropped after it); every round's figures, and
    their medians."""
    figures = []
    for n in range(rounds):
        admin_dsn, db_name, dsn, _ = await create_bench_database(prefix)
        try:
            figures.append(await one_round(dsn))
        finally:
            await drop_bench_database(admin_dsn, db_name)
        print(f"round {n + 1}: {figures[-1]}", flush=True)
    return figures, {key: statistics.median(r[key] for r in figures) for key in figures[0]}


async def one_round(dsn: str, jobs: int, claim: int, complete: int, without: list[str]) -> dict[str, float]:
    lease_sql = query("job_lease_available")
    complete_sql = complete_without(query("job_complete_if_leased_many"), without)

    async def claim_some(conn: asyncpg.Connection, n: int) -> list[asyncpg.Record]:
        claimed: list[asyncpg.Record] = await conn.fetch(
            lease_sql, "bench", n, [], LEASE_MS, None, None, 1, 0, False, 1000
        )
        return claimed

    async def complete_some(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> list[asyncpg.Record]:
        ids, tokens = [r["id"] for r in rows], [r["lease_token"] for r in rows]
        finished: list[asyncpg.Record] = await conn.fetch(complete_sql, ids, tokens, [RESULT] * len(rows), None, None)
        return finished

    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute(INSERT_JOBS, jobs, HOSTLESS_SPEC.SerializeToString())
        await conn.execute("VACUUM ANALYZE jobs")
        figures = await claim_and_complete(conn, jobs, claim, complete, claim_some, complete_some)
        closed = "running" if "history" in without else "succeeded"
        attempts = await conn.fetchval("SELECT count(*) FROM job_attempts WHERE outcome = $1", closed)
        if attempts != jobs:
            raise RuntimeError(f"{attempts} {closed} attempts recorded for {jobs} jobs")
    finally:
        await conn.close()
    return figures


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rounds, medians = await each_round(
        "job_sql_cost",
        args.rounds,
        lambda dsn: one_round(dsn, args.jobs, args.claim, args.complete, args.complete_without),
    )
    return {
        "jobs": args.jobs,
        "claim": args.claim,
        "complete": args.complete,
        "complete_without": args.complete_without,
        "rounds": rounds,
        "median": medians,
    }


def loop_parser(description: str | None) -> argparse.ArgumentParser:
    """The options of a claim-and-complete loop: jobs, claim and complete sizes, rounds."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--claim", type=int, default=200, help="jobs a claim asks for")
    parser.add_argument("--complete", type=int, default=100, help="jobs a complete carries")
    parser.add_argument("--rounds", type=int, default=3)
    return parser


def main() -> None:
    parser = loop_parser(__doc__)
    parser.add_argument(
        "--complete-without",
        type=lambda text: [part for part in text.split(",") if part],
        default=[],
        help=f"leave these parts out of the complete, to weigh them: {', '.join(REMOVABLE)}",
    )
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
