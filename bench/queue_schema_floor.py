"""What a job would cost PostgreSQL on a live-queue-plus-archive schema: a prototype, not the product.

    python bench/queue_schema_floor.py [--jobs 20000] [--claim 200] [--complete 100] [--rounds 3] [--lean]

bench/job_sql_cost.py measures the product's own claim and complete. This script runs the same
loop (one connection, claims of --claim jobs, completes of --complete, backend CPU from /proc and
the WAL written, per job) over a prototype of the other design: a narrow table of live jobs
(queued or leased) that a job leaves when it finishes, and an archive of finished jobs,
partitioned by finish time, that keeps the attempt's history in the job's own row.

- claim: lock and update the live row (token, expiry, attempt, worker), asynchronous commit, as
  the product's claim does. Not a HOT update (the available-jobs index stops at leased rows),
  but only two index entries (primary key, lease expiry) and no attempt row.
- complete: delete the live rows whose lease is held and insert them into the archive with their
  result, in one statement (a durable commit).

Beside that it keeps what the product's tables keep for a no-op job: the per-state counts
(a delta row per kind and statement), the live table's target-URL and dedupe-key indexes, and on
the archive the indexes its admin queries would read (state, creation time, crawl, URL prefix).
With --lean it keeps none of that: the bare queue. Hosts, crawls and result rows are left out
either way (a no-op job has none). So it is the best case of that design, to weigh a schema
change against; the product's figure is bench/job_sql_cost.py's on the same server. The last
line is one JSON object with every round and the medians.
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

from bench import procs
from bench.job_sql_cost import LEASE_MS, RESULT, wal_now
from bench.queue import HOSTLESS_SPEC, create_bench_database, drop_bench_database

SCHEMA = """
CREATE TABLE live_jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL,
    spec bytea NOT NULL,
    priority integer NOT NULL DEFAULT 0,
    run_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    attempt integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    lease_token uuid,
    leased_by text,
    leased_at timestamptz,
    lease_expires_at timestamptz,
    target_url text,
    dedupe_key text,
    crawl_id bigint
);
CREATE INDEX live_jobs_available ON live_jobs (priority DESC, run_at, id) WHERE lease_token IS NULL;
CREATE INDEX live_jobs_lease_expiry ON live_jobs (lease_expires_at) WHERE lease_token IS NOT NULL;

CREATE TABLE finished_jobs (
    id bigint NOT NULL,
    kind text NOT NULL,
    spec bytea NOT NULL,
    priority integer NOT NULL,
    run_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    attempt integer NOT NULL,
    max_attempts integer NOT NULL,
    state text NOT NULL,
    lease_token uuid,
    leased_by text,
    leased_at timestamptz,
    finished_at timestamptz NOT NULL,
    result bytea,
    target_url text,
    crawl_id bigint,
    PRIMARY KEY (id, finished_at)
) PARTITION BY RANGE (finished_at);
CREATE TABLE finished_jobs_today PARTITION OF finished_jobs
    FOR VALUES FROM (now() - interval '1 day') TO (now() + interval '1 day');
CREATE INDEX finished_jobs_finished_at ON finished_jobs USING brin (finished_at);
"""

# What the product's tables keep beside the bare queue (left out with --lean).
KEPT = """
CREATE UNIQUE INDEX live_jobs_target_url_leased ON live_jobs (target_url)
    WHERE lease_token IS NOT NULL AND target_url IS NOT NULL;
CREATE UNIQUE INDEX live_jobs_dedupe_key ON live_jobs (dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX live_jobs_created_at ON live_jobs (created_at);
CREATE INDEX finished_jobs_state ON finished_jobs (state, id);
CREATE INDEX finished_jobs_created_at ON finished_jobs (created_at);
CREATE INDEX finished_jobs_crawl ON finished_jobs (crawl_id, state, id) WHERE crawl_id IS NOT NULL;
CREATE INDEX finished_jobs_target_url ON finished_jobs (target_url text_pattern_ops) WHERE target_url IS NOT NULL;
CREATE TABLE job_count_deltas (kind text NOT NULL, state text NOT NULL, delta bigint NOT NULL);
"""
COUNT_CLAIM = """, counted AS (
    INSERT INTO job_count_deltas (kind, state, delta)
    SELECT per_kind.kind, moves.state, moves.n
    FROM (SELECT kind, count(*) AS c FROM leased GROUP BY kind) AS per_kind,
         LATERAL (VALUES ('queued', -per_kind.c), ('leased', per_kind.c)) AS moves(state, n)
)"""
COUNT_COMPLETE = """, counted AS (
    INSERT INTO job_count_deltas (kind, state, delta)
    SELECT per_kind.kind, moves.state, moves.n
    FROM (SELECT kind, count(*) AS c FROM done GROUP BY kind) AS per_kind,
         LATERAL (VALUES ('leased', -per_kind.c), ('succeeded', per_kind.c)) AS moves(state, n)
)"""

INSERT_JOBS = """
INSERT INTO live_jobs (kind, spec, run_at, created_at, max_attempts)
SELECT 'noop', $2::bytea, now(), now(), 3 FROM generate_series(1, $1::integer)
"""

CLAIM = """
WITH picked AS (
    SELECT id FROM live_jobs
    WHERE lease_token IS NULL AND run_at <= now()
    ORDER BY priority DESC, run_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE live_jobs AS j
    SET lease_token = gen_random_uuid(), leased_by = $1, leased_at = now(),
        lease_expires_at = now() + $3::integer * interval '1 millisecond', attempt = j.attempt + 1
    FROM picked
    WHERE j.id = picked.id AND set_config('synchronous_commit', 'off', true) = 'off'
    RETURNING j.id, j.kind, j.spec, j.attempt, j.max_attempts, j.lease_token, j.lease_expires_at
){counts}
SELECT * FROM leased
"""

COMPLETE = """
WITH done AS (
    DELETE FROM live_jobs AS j
    USING unnest($1::bigint[], $2::uuid[], $3::bytea[]) AS c(id, lease_token, result)
    WHERE j.id = c.id AND j.lease_token = c.lease_token
    RETURNING j.*, c.result
){counts}
INSERT INTO finished_jobs (id, kind, spec, priority, run_at, created_at, attempt, max_attempts, state,
                           lease_token, leased_by, leased_at, finished_at, result, target_url, crawl_id)
SELECT id, kind, spec, priority, run_at, created_at, attempt, max_attempts, 'succeeded',
       lease_token, leased_by, leased_at, now(), result, target_url, crawl_id
FROM done
RETURNING id
"""


async def one_round(dsn: str, jobs: int, claim: int, complete: int, lean: bool) -> dict[str, float]:
    claim_sql = CLAIM.format(counts="" if lean else COUNT_CLAIM)
    complete_sql = COMPLETE.format(counts="" if lean else COUNT_COMPLETE)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA if lean else SCHEMA + KEPT)
        await conn.execute(INSERT_JOBS, jobs, HOSTLESS_SPEC.SerializeToString())
        await conn.execute("VACUUM ANALYZE live_jobs")
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        spent = {"claim": 0.0, "complete": 0.0}
        before = await wal_now(conn)
        started = time.monotonic()
        done = 0
        while done < jobs:
            cpu = procs.cpu_seconds(backend)
            rows = await conn.fetch(claim_sql, "bench", claim, LEASE_MS)
            spent["claim"] += procs.cpu_seconds(backend) - cpu
            if not rows:
                raise RuntimeError(f"nothing to claim after {done} of {jobs} jobs")
            for start in range(0, len(rows), complete):
                part = rows[start : start + complete]
                cpu = procs.cpu_seconds(backend)
                ids, tokens = [r["id"] for r in part], [r["lease_token"] for r in part]
                finished = await conn.fetch(complete_sql, ids, tokens, [RESULT] * len(part))
                spent["complete"] += procs.cpu_seconds(backend) - cpu
                if len(finished) != len(part):
                    raise RuntimeError("a complete did not complete its batch")
            done += len(rows)
        wall = time.monotonic() - started
        after = await wal_now(conn)
        wal_bytes = await conn.fetchval("SELECT pg_wal_lsn_diff($1, $2)", after["lsn"], before["lsn"])
        archived = await conn.fetchval("SELECT count(*) FROM finished_jobs WHERE state = 'succeeded'")
        if archived != jobs:
            raise RuntimeError(f"{archived} jobs archived of {jobs}")
    finally:
        await conn.close()
    return {
        "claim_us_per_job": round(spent["claim"] / jobs * 1e6, 1),
        "complete_us_per_job": round(spent["complete"] / jobs * 1e6, 1),
        "backend_us_per_job": round((spent["claim"] + spent["complete"]) / jobs * 1e6, 1),
        "wal_bytes_per_job": round(float(wal_bytes) / jobs, 1),
        "wal_records_per_job": round((after["records"] - before["records"]) / jobs, 2),
        "wall_s": round(wall, 2),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rounds = []
    for n in range(args.rounds):
        admin_dsn, db_name, dsn, _ = await create_bench_database("queue_schema_floor")
        try:
            figures = await one_round(dsn, args.jobs, args.claim, args.complete, args.lean)
        finally:
            await drop_bench_database(admin_dsn, db_name)
        print(f"round {n + 1}: {figures}", flush=True)
        rounds.append(figures)
    medians = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    return {
        "jobs": args.jobs,
        "claim": args.claim,
        "complete": args.complete,
        "lean": args.lean,
        "rounds": rounds,
        "median": medians,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--claim", type=int, default=200, help="jobs a claim asks for")
    parser.add_argument("--complete", type=int, default=100, help="jobs a complete carries")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lean", action="store_true", help="the bare queue: no counts, no indexes beyond its own")
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
