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
from typing import Any

import asyncpg

from bench.job_sql_cost import LEASE_MS, RESULT, claim_and_complete, each_round, loop_parser
from bench.queue import HOSTLESS_SPEC

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


def count_moves(source: str, from_state: str, to_state: str) -> str:
    """A CTE that counts the rows of `source` out of one state and into another, per kind."""
    return f""", counted AS (
    INSERT INTO job_count_deltas (kind, state, delta)
    SELECT per_kind.kind, moves.state, moves.n
    FROM (SELECT kind, count(*) AS c FROM {source} GROUP BY kind) AS per_kind,
         LATERAL (VALUES ('{from_state}', -per_kind.c), ('{to_state}', per_kind.c)) AS moves(state, n)
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
    claim_sql = CLAIM.format(counts="" if lean else count_moves("leased", "queued", "leased"))
    complete_sql = COMPLETE.format(counts="" if lean else count_moves("done", "leased", "succeeded"))

    async def claim_some(conn: asyncpg.Connection, n: int) -> list[asyncpg.Record]:
        claimed: list[asyncpg.Record] = await conn.fetch(claim_sql, "bench", n, LEASE_MS)
        return claimed

    async def complete_some(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> list[asyncpg.Record]:
        ids, tokens = [r["id"] for r in rows], [r["lease_token"] for r in rows]
        finished: list[asyncpg.Record] = await conn.fetch(complete_sql, ids, tokens, [RESULT] * len(rows))
        return finished

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA if lean else SCHEMA + KEPT)
        await conn.execute(INSERT_JOBS, jobs, HOSTLESS_SPEC.SerializeToString())
        await conn.execute("VACUUM ANALYZE live_jobs")
        figures = await claim_and_complete(conn, jobs, claim, complete, claim_some, complete_some)
        archived = await conn.fetchval("SELECT count(*) FROM finished_jobs WHERE state = 'succeeded'")
        if archived != jobs:
            raise RuntimeError(f"{archived} jobs archived of {jobs}")
    finally:
        await conn.close()
    return figures


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rounds, medians = await each_round(
        "queue_schema_floor", args.rounds, lambda dsn: one_round(dsn, args.jobs, args.claim, args.complete, args.lean)
    )
    return {
        "jobs": args.jobs,
        "claim": args.claim,
        "complete": args.complete,
        "lean": args.lean,
        "rounds": rounds,
        "median": medians,
    }


def main() -> None:
    parser = loop_parser(__doc__)
    parser.add_argument("--lean", action="store_true", help="the bare queue: no counts, no indexes beyond its own")
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
