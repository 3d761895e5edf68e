"""Admin API latency on a large queue: each Admin RPC over gRPC, and the plans of its SQL.

    python bench/admin.py --rows 1000000 [--repeat 30]

Uses DATABASE_URL's server if set, else the embedded PostgreSQL in .crawlfleet/bench-pg, and a fresh
database for the run (dropped at the end). Steps:

1. `coordinator migrate`, then N jobs written directly in SQL in chunks (INSERT ... SELECT from
   generate_series, so the count triggers fire as for any insert), their attempts, 50 workers, and
   VACUUM ANALYZE. The mix: 90% succeeded, 4% dead, 3% queued, 1% leased, 2% cancelled; 90% scrape
   (https://shopNN.example/product/<id>, 50 shops) and 10% noop; created_at over 30 days, in id
   order; live (queued and leased) jobs among the newest 8%. Live scrape jobs carry the dedupe key
   'url:<target_url>', others none. Leases expire 10 to 60 minutes on (the coordinator's reaper runs
   during the bench) except 2% already expired, which it reaps at start. Two crawls own scrape
   jobs, at depths 0 to 3: an old one, the scrape jobs among the first 2% of ids (finished a month
   ago), and a long one, shop07's scrape jobs elsewhere (2%, spread over the whole id range).
2. A coordinator on that database; waits until job_counts holds all N jobs (folded) and
   GetQueueStats agrees.
3. Each Admin RPC: 2 warm-ups, then --repeat timed calls (p50 and p99 in ms, client side). The
   mutating ones come last: RequeueDeadJobs by filter (100 per call), then PurgeJobs a few times.
4. EXPLAIN (ANALYZE, BUFFERS) of the SQL behind them (sql/queries/admin.sql, plus job_get and a
   crawl's result pages), once with a custom plan (what the first 5 executions on a connection
   get) and once with the generic plan (what asyncpg's prepared statements may switch to after
   that); mutating ones in a rolled-back transaction. Summary line for each; the plan tree for
   those slower than --slow-ms.

Progress goes to stdout; the last line is one JSON object with the figures.
"""

# ruff: noqa: E402 (sys.path is fixed before the imports, see below)

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/admin.py` puts bench/ first on sys.path, where bench/queue.py would shadow the stdlib
# `queue` that asyncio imports: swap that entry for the repository root before importing anything.
REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [str(REPO) if Path(p or ".").resolve() == REPO / "bench" else p for p in sys.path]

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import asyncpg
import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from bench import procs
from bench.queue import create_bench_database, drop_bench_database, percentile, say
from crawlfleet.coordinator.storage import sql
from crawlfleet.coordinator.storage.admin import NOT_DUE_BOUND
from crawlfleet.v1 import admin_pb2 as pb
from crawlfleet.v1 import admin_pb2_grpc, crawls_pb2, jobs_pb2

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
MIGRATE_TIMEOUT = 120.0
CALL_TIMEOUT = 120.0
FOLD_TIMEOUT = 120.0
POLL_SECONDS = 0.2
WARMUPS = 2
WORKERS = 50
MAX_ID = 2**63 - 1
PLAN_LINES = 30
SHOP = "https://shop07.example/"
# Migrated already; no Prometheus endpoint (the default port may be another bench's).
SERVE_FLAGS = ["--no-migrate", "--metrics-listen", "off"]

# $1..$2: the ids of the chunk; $3: N; $4, $5: scrape and noop specs; $6, $7: their results; $8: "now";
# $9, $10: the old crawl (the scrape jobs of the first 2% of ids) and the long one (shop07's others).
# r_state picks the state (live states only among the newest 8%), r_kind the kind, r the details.
FILL_JOBS = """
INSERT INTO jobs (id, kind, state, priority, spec, target_url, dedupe_key, run_at, created_at, attempt,
                  max_attempts, retry_initial_ms, retry_multiplier, retry_max_ms, lease_token, leased_by,
                  leased_at, lease_expires_at, cancel_requested, finished_at, last_error, result, crawl_id, depth)
OVERRIDING SYSTEM VALUE
SELECT g, kind, state, priority,
       CASE WHEN kind = 'scrape' THEN $4::bytea ELSE $5::bytea END,
       target_url,
       CASE WHEN state IN ('queued', 'leased') THEN 'url:' || target_url END,
       CASE WHEN state = 'queued' AND attempt > 0 THEN $8::timestamptz + r * interval '1 hour' ELSE created_at END,
       created_at, attempt, 5, 1000, 2, 300000,
       CASE WHEN attempt > 0 AND state <> 'queued' THEN gen_random_uuid() END,
       CASE WHEN attempt > 0 THEN worker END,
       CASE WHEN attempt > 0 THEN leased_at END,
       CASE WHEN state = 'leased' THEN
                CASE WHEN r < 0.02 THEN $8::timestamptz - interval '5 seconds'
                     ELSE $8::timestamptz + (10 + r * 50) * interval '1 minute' END
       END,
       state = 'cancelled' AND attempt > 0,
       CASE WHEN state = 'cancelled' AND attempt = 0 THEN created_at + interval '30 seconds'
            WHEN state IN ('succeeded', 'dead', 'cancelled') THEN leased_at + interval '1 second' END,
       CASE WHEN state = 'dead' AND r < 0.4 THEN 'http_4xx: 404 Not Found'
            WHEN state = 'dead' AND r < 0.8 THEN 'http_5xx: 503 Service Unavailable'
            WHEN state = 'dead' THEN 'timeout: no response within 30s'
            WHEN state = 'queued' AND attempt > 0 THEN 'http_5xx: 502 Bad Gateway' END,
       CASE WHEN state = 'succeeded' THEN CASE WHEN kind = 'scrape' THEN $6::bytea ELSE $7::bytea END END,
       CASE WHEN kind = 'scrape' AND g <= $3::bigint / 50 THEN $9::bigint
            WHEN kind = 'scrape' AND g % 50 = 7 THEN $10::bigint END,
       CASE WHEN kind = 'scrape' AND (g <= $3::bigint / 50 OR g % 50 = 7) THEN (g % 4)::int END
FROM (
    SELECT g, kind, state, created_at, r, target_url, worker,
           CASE WHEN r_prio < 0.9 THEN 0 WHEN r_prio < 0.98 THEN 10 ELSE 50 END::smallint AS priority,
           CASE state WHEN 'succeeded' THEN 1 + (r < 0.05)::int
                      WHEN 'dead' THEN CASE WHEN r < 0.4 THEN 1 ELSE 5 END
                      WHEN 'cancelled' THEN (r < 0.5)::int
                      WHEN 'queued' THEN (r >= 0.7)::int
                      ELSE 1 END AS attempt,
           CASE WHEN state = 'leased' THEN $8::timestamptz - r * interval '1 minute'
                WHEN state = 'queued' THEN created_at + interval '2 seconds'
                ELSE created_at + (2 + 20 * r) * interval '1 second' END AS leased_at
    FROM (
        SELECT g, created_at, r, r_prio,
               CASE WHEN r_kind < 0.9 THEN 'scrape' ELSE 'noop' END AS kind,
               CASE WHEN r_kind < 0.9
                    THEN 'https://shop' || lpad((g % 50)::text, 2, '0') || '.example/product/' || g END AS target_url,
               'bench-worker-' || lpad((g * 7 % 45)::text, 2, '0') AS worker,
               CASE WHEN recent AND r_state < 0.375 THEN 'queued'
                    WHEN recent AND r_state < 0.5 THEN 'leased'
                    WHEN finished_u < 0.9 / 0.96 THEN 'succeeded'
                    WHEN finished_u < 0.94 / 0.96 THEN 'dead'
                    ELSE 'cancelled' END::job_state AS state
        FROM (
            SELECT g, r_state, r_kind, r, r_prio, recent,
                   CASE WHEN recent THEN (r_state - 0.5) * 2 ELSE r_state END AS finished_u,
                   $8::timestamptz - interval '2 minutes'
                       - interval '30 days' * (($3::bigint - g)::float8 / $3::bigint) AS created_at
            FROM (SELECT g, random() AS r_state, random() AS r_kind, random() AS r, random() AS r_prio,
                         g > $3::bigint * 0.92 AS recent
                  FROM generate_series($1::bigint, $2::bigint) AS g) AS draws
        ) AS timed
    ) AS typed
) AS detailed
"""

# One row per attempt; the last one carries the job's lease token (running if the job is leased).
FILL_ATTEMPTS = """
INSERT INTO job_attempts (job_id, attempt, lease_token, worker_id, target_url, started_at, finished_at, outcome,
                          error_type, error_message)
SELECT id, a, CASE WHEN last AND lease_token IS NOT NULL THEN lease_token ELSE gen_random_uuid() END,
       leased_by, target_url, started_at,
       CASE WHEN outcome <> 'running' THEN started_at + interval '1 second' END,
       outcome,
       CASE WHEN outcome = 'failed' THEN coalesce(split_part(last_error, ': ', 1), 'http_5xx') END,
       CASE WHEN outcome = 'failed' THEN coalesce(split_part(last_error, ': ', 2), '503 Service Unavailable') END
FROM (
    SELECT j.id, a, a = j.attempt AS last, j.lease_token, j.leased_by, j.target_url, j.last_error,
           j.leased_at - (j.attempt - a) * interval '4 seconds' AS started_at,
           CASE WHEN a < j.attempt THEN 'failed'
                WHEN j.state = 'leased' THEN 'running'
                WHEN j.state = 'succeeded' THEN 'succeeded'
                WHEN j.state = 'cancelled' THEN 'cancelled'
                ELSE 'failed' END AS outcome
    FROM jobs AS j CROSS JOIN LATERAL generate_series(1, j.attempt) AS a
    WHERE j.id BETWEEN $1 AND $2
) AS attempts
"""

# 45 workers seen just now and 5 that went away hours ago; leases are held by the 45.
FILL_WORKERS = """
INSERT INTO workers (id, host, version, kinds, first_seen_at, last_seen_at)
SELECT 'bench-worker-' || lpad(w::text, 2, '0'), 'host-' || (w % 10), '0.1.0', ARRAY['scrape', 'noop'],
       $1::timestamptz - interval '30 days',
       CASE WHEN w < 45 THEN now() - w * interval '1 second' ELSE $1::timestamptz - interval '3 hours' END
FROM generate_series(0, $2::int - 1) AS w
ON CONFLICT (id) DO UPDATE SET last_seen_at = excluded.last_seen_at
"""
FOLDED_QUERY = "SELECT coalesce(sum(count), 0)::bigint FROM job_counts"
# A crawl ($1: its spec, $2: "now"); its jobs are written by FILL_JOBS.
FILL_CRAWL = """
INSERT INTO crawls (spec, max_depth, max_pages, max_pages_per_host, max_query_variants, priority, max_attempts,
                    retry_initial_ms, retry_multiplier, retry_max_ms, pages_enqueued, created_at, starts_at)
VALUES ($1, 3, 10000000, 10000000, 100, 0, 5, 1000, 2, 300000, 0, $2::timestamptz - interval '30 days',
        $2::timestamptz - interval '30 days')
RETURNING id
"""
# A page of results as the admin API asks for it, and the byte bound it gives.
RESULT_PAGE = 100
RESULT_PAGE_BYTES = 3 * 1024 * 1024


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="jobs to write (N)")
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per RPC, after 2 warm-ups")
    parser.add_argument("--chunk", type=int, default=200_000, help="jobs per INSERT statement")
    parser.add_argument("--purge-calls", type=int, default=3, help="PurgeJobs calls (10000 jobs each at most)")
    parser.add_argument("--slow-ms", type=float, default=20.0, help="print the plan of queries slower than this")
    parser.add_argument("--seed", type=float, default=0.42, help="setseed() of the fill, for the same data each run")
    return parser.parse_args()


def specs_and_results() -> tuple[bytes, bytes, bytes, bytes]:
    """Serialized JobSpec and JobResult of each kind, the same for every row."""
    scrape = jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url="https://shop00.example/product/1"))
    noop = jobs_pb2.JobSpec(noop=jobs_pb2.NoopSpec())
    page = jobs_pb2.ScrapeResult(
        final_url="https://shop00.example/product/1",
        status_code=200,
        title="Product 1 | Shop 00",
        content_type="text/html",
        body_bytes=48_213,
        language="en",
        charset="utf-8",
        rendered_with=jobs_pb2.RENDER_MODE_HTTP,
        image_urls=[f"https://shop00.example/img/1-{i}.jpg" for i in range(3)],
    )
    return (
        scrape.SerializeToString(),
        noop.SerializeToString(),
        jobs_pb2.JobResult(scrape=page).SerializeToString(),
        jobs_pb2.JobResult(noop=jobs_pb2.NoopResult()).SerializeToString(),
    )


class BenchCrawls(NamedTuple):
    old: int
    spread: int


async def fill(
    db: asyncpg.Connection, rows: int, chunk: int, seed: float
) -> tuple[dt.datetime, BenchCrawls, float, float]:
    """Write the crawls, the jobs, their attempts and the workers; returns the fill's "now", the
    crawls' ids, fill and VACUUM seconds."""
    await db.execute("SELECT setseed($1)", seed)
    now: dt.datetime = await db.fetchval("SELECT now()")
    blobs = specs_and_results()
    crawl_spec = crawls_pb2.CrawlSpec(seeds=[SHOP], max_depth=3).SerializeToString()
    crawls = BenchCrawls(*[await db.fetchval(FILL_CRAWL, crawl_spec, now) for _ in BenchCrawls._fields])
    started = time.perf_counter()
    for lo in range(1, rows + 1, chunk):
        hi = min(rows, lo + chunk - 1)
        await db.execute(FILL_JOBS, lo, hi, rows, *blobs, now, *crawls)
        await db.execute(FILL_ATTEMPTS, lo, hi)
        elapsed = time.perf_counter() - started
        say(f"  filled jobs {lo}..{hi} with attempts ({hi / elapsed:,.0f} jobs/s so far)")
    await db.execute(FILL_WORKERS, now, WORKERS)
    await db.execute("SELECT setval(pg_get_serial_sequence('jobs', 'id'), $1)", rows)
    # Written behind the queue's back: give the counts what the queue's statements would have.
    await db.execute(
        "INSERT INTO job_count_deltas (kind, state, delta) SELECT kind, state, count(*) FROM jobs GROUP BY 1, 2"
    )
    fill_s = time.perf_counter() - started
    started = time.perf_counter()
    await db.execute("VACUUM ANALYZE")
    return now, crawls, fill_s, time.perf_counter() - started


async def migrate(dsn: str, log_dir: Path, children: list[procs.Child]) -> None:
    child = procs.start_python(
        "migrate", ["-m", "crawlfleet.coordinator", "migrate", "--database-url", dsn], log_dir=log_dir, cwd=REPO
    )
    children.append(child)
    code = await asyncio.to_thread(child.proc.wait, MIGRATE_TIMEOUT)
    children.remove(child)  # exited: no longer one to check or kill
    if code != 0:
        raise procs.ChildError(f"coordinator migrate exited {code}:\n{child.log_tail()}")


async def wait_folded(
    db: asyncpg.Connection, stub: admin_pb2_grpc.AdminAsyncStub, rows: int, children: list[procs.Child]
) -> float:
    """Seconds until job_counts (folded, without pending deltas) sums to N; then GetQueueStats must agree."""
    started = time.monotonic()
    while (folded := await db.fetchval(FOLDED_QUERY)) != rows:
        procs.check_running(children)
        if time.monotonic() - started > FOLD_TIMEOUT:
            raise TimeoutError(f"job_counts holds {folded} jobs after {FOLD_TIMEOUT}s, expected {rows}")
        await asyncio.sleep(POLL_SECONDS)
    waited = time.monotonic() - started
    stats = await stub.GetQueueStats(pb.GetQueueStatsRequest(), timeout=CALL_TIMEOUT)
    total = sum(s.count for s in stats.states)
    if total != rows:
        raise RuntimeError(f"GetQueueStats counts {total} jobs, expected {rows}")
    return waited


def timestamp(value: dt.datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


@dataclass
class Timing:
    """Client-side latencies of one RPC, and what the last response said."""

    samples: list[float]
    note: str

    def figures(self) -> dict[str, float]:
        ordered = sorted(self.samples)
        return {"p50_ms": ms(percentile(ordered, 0.5)), "p99_ms": ms(percentile(ordered, 0.99))}


async def time_calls(call: Callable[[int], Awaitable[Any]], repeat: int, describe: Callable[[Any], str]) -> Timing:
    """WARMUPS untimed calls, then repeat timed ones; call gets the call's index."""
    for i in range(WARMUPS):
        await call(i)
    samples = []
    response = None
    for i in range(WARMUPS, WARMUPS + repeat):
        started = time.perf_counter()
        response = await call(i)
        samples.append(time.perf_counter() - started)
    return Timing(samples, describe(response))


async def time_reads(
    stub: admin_pb2_grpc.AdminAsyncStub, now: dt.datetime, rows: int, repeat: int, crawls: BenchCrawls
) -> tuple[dict[str, Timing], str]:
    """The read-only RPCs; also returns the page token of the first page of dead jobs."""
    dead = pb.JobFilter(states=[jobs_pb2.JOB_STATE_DEAD])
    first_dead = await stub.ListJobs(pb.ListJobsRequest(filter=dead), timeout=CALL_TIMEOUT)
    window_start = now - dt.timedelta(days=15)
    window = pb.JobFilter(
        created_after=timestamp(window_start), created_before=timestamp(window_start + dt.timedelta(hours=1))
    )
    ids = random.Random(7).sample(range(1, rows + 1), WARMUPS + repeat)
    t = CALL_TIMEOUT
    calls: dict[str, tuple[Callable[[int], Awaitable[Any]], Callable[[Any], str]]] = {
        "GetQueueStats": (
            lambda i: stub.GetQueueStats(pb.GetQueueStatsRequest(), timeout=t),
            lambda r: f"{sum(s.count for s in r.states)} jobs",
        ),
        "GetQueueHealth": (
            lambda i: stub.GetQueueHealth(pb.GetQueueHealthRequest(), timeout=t),
            lambda r: f"due {r.due}, expired {r.leases_expired}, dead {r.dead}, {len(r.workers)} workers",
        ),
        "ListJobs": (lambda i: stub.ListJobs(pb.ListJobsRequest(), timeout=t), lambda r: f"{len(r.jobs)} jobs"),
        "ListJobs_dead": (
            lambda i: stub.ListJobs(pb.ListJobsRequest(filter=dead), timeout=t),
            lambda r: f"{len(r.jobs)} jobs",
        ),
        "ListJobs_scrape_shop": (
            lambda i: stub.ListJobs(pb.ListJobsRequest(filter=pb.JobFilter(kind="scrape", url_prefix=SHOP)), timeout=t),
            lambda r: f"{len(r.jobs)} jobs",
        ),
        "ListJobs_created_1h": (
            lambda i: stub.ListJobs(pb.ListJobsRequest(filter=window), timeout=t),
            lambda r: f"{len(r.jobs)} jobs (created 15 days ago, 1 h)",
        ),
        "ListJobs_dead_page2": (
            lambda i: stub.ListJobs(pb.ListJobsRequest(filter=dead, page_token=first_dead.next_page_token), timeout=t),
            lambda r: f"{len(r.jobs)} jobs",
        ),
        "ListWorkers": (
            lambda i: stub.ListWorkers(pb.ListWorkersRequest(), timeout=t),
            lambda r: f"{len(r.workers)} workers, {sum(w.in_flight for w in r.workers)} leases",
        ),
        "GetJob": (
            lambda i: stub.GetJob(pb.GetJobRequest(job_id=ids[i]), timeout=t),
            lambda r: f"job {r.job.id} with {len(r.job.attempts)} attempt(s)",
        ),
    }

    def list_results(request: pb.ListResultsRequest) -> Callable[[int], Awaitable[Any]]:
        return lambda i: stub.ListResults(request, timeout=t)

    for name, request in result_pages(rows, crawls).items():  # pages of crawl exports
        calls[f"ListResults_crawl_{name}"] = (list_results(request), lambda r: f"{len(r.results)} results")
    timings = {}
    for name, (call, describe) in calls.items():
        timings[name] = await time_calls(call, repeat, describe)
        say(f"  {name}: {timings[name].figures()} ({timings[name].note})")
    return timings, first_dead.next_page_token


def result_pages(rows: int, crawls: BenchCrawls) -> dict[str, pb.ListResultsRequest]:
    """Pages of crawl exports: the first and the last of the old crawl (its last page holds a few
    of its jobs, then nothing up to the newest job), the first and a late one of the spread crawl."""

    def page(crawl_id: int, after: int) -> pb.ListResultsRequest:
        return pb.ListResultsRequest(crawl_id=crawl_id, page_size=RESULT_PAGE, page_token=str(after) if after else "")

    return {
        "old_first": page(crawls.old, 0),
        "old_last": page(crawls.old, rows // 50 - RESULT_PAGE // 2),
        "spread_first": page(crawls.spread, 0),
        "spread_late": page(crawls.spread, rows * 9 // 10),
    }


# --- EXPLAIN ------------------------------------------------------------------------------------


def literal(value: object) -> str:
    """An SQL literal for EXECUTE; the prepared statement's parameter types give it its type."""
    if value is None:
        return "NULL"
    if isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, dt.datetime):
        text = value.isoformat()
    elif isinstance(value, list):
        text = "{" + ",".join('"' + str(v) + '"' for v in value) + "}"
    else:
        text = str(value)
    return "'" + text.replace("'", "''") + "'"


def exclusive_ms(node: dict[str, Any]) -> float:
    children = node.get("Plans", [])
    total = node["Actual Total Time"] * node["Actual Loops"]
    return float(total - sum(c["Actual Total Time"] * c["Actual Loops"] for c in children))


def describe_node(node: dict[str, Any]) -> str:
    text = str(node["Node Type"])
    if "Index Name" in node:
        text += f" using {node['Index Name']}"
    if "Relation Name" in node:
        text += f" on {node['Relation Name']}"
    text += f" (rows={node['Actual Rows']} loops={node['Actual Loops']} time={node['Actual Total Time']:.2f}ms"
    for key, short in (("Rows Removed by Filter", "filtered"), ("Rows Removed by Index Recheck", "rechecked")):
        if node.get(key):
            text += f" {short}={node[key]}"
    hit, read = node.get("Shared Hit Blocks", 0), node.get("Shared Read Blocks", 0)
    return text + f" hit={hit} read={read})"


def walk(node: dict[str, Any], depth: int = 0) -> list[tuple[int, dict[str, Any]]]:
    found = [(depth, node)]
    for child in node.get("Plans", []):
        found.extend(walk(child, depth + 1))
    return found


@dataclass(frozen=True)
class ExplainCase:
    name: str
    query: str
    params: Sequence[object]


async def explain(db: asyncpg.Connection, case: ExplainCase, mode: str) -> dict[str, Any]:
    """EXPLAIN ANALYZE of the prepared statement with a custom or the generic plan, rolled back (the
    mutating queries must not change the data the RPCs see)."""
    args = ", ".join(literal(p) for p in case.params)
    statement = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE bench_q" + (f"({args})" if case.params else "")
    transaction = db.transaction()
    await transaction.start()
    try:
        await db.execute(f"SET LOCAL plan_cache_mode = force_{mode}_plan")
        plan: dict[str, Any] = json.loads(await db.fetchval(statement))[0]
        return plan
    finally:
        await transaction.rollback()


async def explain_case(db: asyncpg.Connection, case: ExplainCase, slow_ms: float) -> dict[str, float]:
    await db.execute(f"PREPARE bench_q AS {case.query}")
    try:
        figures = {}
        for mode in ("custom", "generic"):
            plan = await explain(db, case, mode)
            nodes = walk(plan["Plan"])
            main = max(nodes, key=lambda n: exclusive_ms(n[1]))[1]
            executed = float(plan["Execution Time"])
            triggers = sum(t["Time"] for t in plan.get("Triggers", []))
            figures[f"{mode}_ms"] = round(executed, 2)
            say(
                f"  {case.name} [{mode}]: {executed:.2f} ms (planning {plan['Planning Time']:.2f} ms"
                + (f", triggers {triggers:.1f} ms" if triggers else "")
                + f"); main node: {describe_node(main)}"
            )
            if executed > slow_ms:
                for depth, node in nodes[:PLAN_LINES]:
                    print(f"      {'  ' * depth}-> {describe_node(node)}", flush=True)
                for trigger in plan.get("Triggers", []):
                    print(f"      trigger {trigger['Trigger Name']}: {trigger['Time']:.1f} ms", flush=True)
        return figures
    finally:
        await db.execute("DEALLOCATE bench_q")


def explain_cases(now: dt.datetime, rows: int, dead_token: str, crawls: BenchCrawls) -> list[ExplainCase]:
    """The admin queries with the parameters the RPCs above pass (see coordinator/queue_admin.py)."""
    q = sql.query
    window_start = now - dt.timedelta(days=15)
    window_end = window_start + dt.timedelta(hours=1)
    # list_jobs without a state: kind, url prefix, created after, created before, error type,
    # before id, limit; with states (job_list_by_state), the states first.
    listing = q("job_list_filtered")
    by_state = q("job_list_by_state")
    return [
        ExplainCase("job_count_fold", q("job_count_fold"), []),
        ExplainCase("job_count_by_kind_state", q("job_count_by_kind_state"), []),
        # expiring within 10 s; stuck after two reaper intervals of the default second; now; the
        # bound on jobs not yet due the coordinator passes.
        ExplainCase("queue_health", q("queue_health"), [10_000, 2_000, None, NOT_DUE_BOUND]),
        ExplainCase("worker_list_seen", q("worker_list_seen"), [now - dt.timedelta(minutes=5)]),
        ExplainCase("job_list_filtered/none", listing, [None, None, None, None, None, MAX_ID, 50]),
        ExplainCase("job_list_by_state/dead", by_state, [["dead"], None, None, None, None, None, MAX_ID, 50]),
        ExplainCase(
            "job_list_by_state/dead_page2", by_state, [["dead"], None, None, None, None, None, int(dead_token), 50]
        ),
        ExplainCase("job_list_filtered/scrape_shop", listing, ["scrape", SHOP, None, None, None, MAX_ID, 50]),
        ExplainCase("job_list_filtered/created_1h", listing, [None, None, window_start, window_end, None, MAX_ID, 50]),
        # The rarest combination: dead noop jobs that timed out (~0.08% of rows).
        ExplainCase(
            "job_list_by_state/dead_noop_timeout",
            by_state,
            [["dead"], "noop", None, None, None, "timeout", MAX_ID, 50],
        ),
        ExplainCase("job_get", q("job_get"), [rows // 2, None]),
        *(
            ExplainCase(
                f"result_list_crawl_after/{name}",
                q("result_list_crawl_after"),
                # after id, limit, kind, max bytes, owner, crawl.
                [int(r.page_token or 0), r.page_size, None, RESULT_PAGE_BYTES, None, r.crawl_id],
            )
            for name, r in result_pages(rows, crawls).items()
        ),
        ExplainCase("job_attempt_list", q("job_attempt_list"), [rows // 2]),
        # The error type as queue_admin escapes it for LIKE.
        ExplainCase(
            "job_requeue_dead",
            q("job_requeue_dead"),
            [None, "scrape", None, None, None, r"http\_5xx", None, 100],
        ),
        ExplainCase(
            "job_purge_finished",
            q("job_purge_finished"),
            [["succeeded", "dead", "cancelled"], now - dt.timedelta(days=29), 10_000],
        ),
    ]


# --- Mutating RPCs ------------------------------------------------------------------------------


async def time_requeue(db: asyncpg.Connection, stub: admin_pb2_grpc.AdminAsyncStub, repeat: int) -> tuple[Timing, int]:
    """RequeueDeadJobs of 100 dead scrape jobs that failed with http_5xx per call; checks they are queued."""
    request = pb.RequeueDeadJobsRequest(filter=pb.JobFilter(kind="scrape", error_type="http_5xx"), limit=100)
    requeued: list[int] = []

    async def call(i: int) -> pb.RequeueDeadJobsResponse:
        response = await stub.RequeueDeadJobs(request, timeout=CALL_TIMEOUT)
        requeued.extend(response.requeued_job_ids)
        return response

    timing = await time_calls(call, repeat, lambda r: f"{len(r.requeued_job_ids)} requeued by the last call")
    queued = await db.fetchval("SELECT count(*) FROM jobs WHERE id = ANY($1::bigint[]) AND state = 'queued'", requeued)
    if queued != len(requeued) or len(set(requeued)) != len(requeued):
        raise RuntimeError(f"{len(requeued)} ids requeued ({len(set(requeued))} distinct), {queued} of them queued")
    timing.note += f"; {queued} requeued in all, all queued"
    return timing, queued


async def time_purge(stub: admin_pb2_grpc.AdminAsyncStub, calls: int) -> list[dict[str, float]]:
    """PurgeJobs of jobs finished more than 29 days ago, 10000 per call."""
    request = pb.PurgeJobsRequest(finished_before=Duration(seconds=29 * 86_400), limit=10_000)
    results = []
    for _ in range(calls):
        started = time.perf_counter()
        response = await stub.PurgeJobs(request, timeout=CALL_TIMEOUT)
        took = time.perf_counter() - started
        results.append({"ms": ms(took), "deleted_jobs": response.deleted_jobs})
        say(f"  PurgeJobs: {response.deleted_jobs} jobs deleted in {ms(took)} ms")
    return results


# --- The run ------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    admin_dsn, db_name, dsn, _ = await create_bench_database("crawlfleet_bench_admin")
    children: list[procs.Child] = []
    load_start = os.getloadavg()[0]
    try:
        await migrate(dsn, log_dir, children)
        say(f"database {db_name} migrated")
        db = await asyncpg.connect(dsn, timeout=START_TIMEOUT, server_settings={"jit": "off"})
        try:
            now, crawls, fill_s, vacuum_s = await fill(db, args.rows, args.chunk, args.seed)
            sizes = await db.fetchrow(
                "SELECT pg_size_pretty(pg_table_size('jobs')) AS heap, pg_size_pretty(pg_indexes_size('jobs')) AS idx,"
                " (SELECT count(*) FROM job_attempts) AS attempts"
            )
            say(
                f"filled {args.rows} jobs ({sizes['attempts']} attempts) in {fill_s:.1f}s, VACUUM ANALYZE"
                f" {vacuum_s:.1f}s; jobs heap {sizes['heap']}, indexes {sizes['idx']}"
            )
            coordinator, address = await procs.start_coordinator(
                dsn, SERVE_FLAGS, log_dir=log_dir, cwd=REPO, timeout=START_TIMEOUT
            )
            children.append(coordinator)
            say(f"coordinator pid {coordinator.pid} on {address}")
            async with grpc.aio.insecure_channel(address) as channel:
                stub = admin_pb2_grpc.AdminStub(channel)
                await channel.channel_ready()
                folded_s = await wait_folded(db, stub, args.rows, children)
                say(f"job_counts folded {args.rows} jobs {folded_s:.1f}s after the coordinator started")

                # Workers report on each Lease; the fill's ones may have aged out of the 5-minute window.
                await db.execute(FILL_WORKERS, now, WORKERS)
                say(f"timing read RPCs ({WARMUPS} warm-ups + {args.repeat} calls each)")
                timings, dead_token = await time_reads(stub, now, args.rows, args.repeat, crawls)
                procs.check_running(children)

                say(f"EXPLAIN (ANALYZE, BUFFERS); plans of queries slower than {args.slow_ms} ms")
                plans = {}
                for case in explain_cases(now, args.rows, dead_token, crawls):
                    plans[case.name] = await explain_case(db, case, args.slow_ms)

                say("timing mutating RPCs")
                timings["RequeueDeadJobs"], requeued = await time_requeue(db, stub, args.repeat)
                say(f"  RequeueDeadJobs: {timings['RequeueDeadJobs'].figures()} ({timings['RequeueDeadJobs'].note})")
                purges = await time_purge(stub, args.purge_calls)
                procs.check_running(children)
        finally:
            await db.close()

        code = await procs.stop(coordinator, STOP_TIMEOUT)
        if code != 0:
            raise procs.ChildError(f"coordinator exited {code} after SIGTERM:\n{coordinator.log_tail()}")
        say("coordinator stopped with status 0")
        return {
            "rows": args.rows,
            "repeat": args.repeat,
            "fill_s": round(fill_s, 1),
            "vacuum_analyze_s": round(vacuum_s, 1),
            "fold_wait_s": round(folded_s, 1),
            "rpc": {name: t.figures() for name, t in timings.items()},
            "requeued": requeued,
            "purge": purges,
            "explain_ms": plans,
            "loadavg_start_end": [round(load_start, 1), round(os.getloadavg()[0], 1)],
        }
    finally:
        procs.kill_all(children)
        await drop_bench_database(admin_dsn, db_name)


def main() -> None:
    args = parse_args()
    if min(args.rows, args.repeat, args.chunk) < 1 or args.rows < 1000:
        sys.exit("--rows must be at least 1000; --repeat and --chunk at least 1")
    log_dir = Path(tempfile.mkdtemp(prefix="crawlfleet-bench-admin-"))
    say(f"child logs in {log_dir}")
    result = asyncio.run(run(args, log_dir))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
