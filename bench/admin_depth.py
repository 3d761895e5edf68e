"""Admin and claim queries at depth vs on an empty table: is every operator query flat?

    python bench/admin_depth.py --finished 10000000 [--rounds 3] [--calls 15]

Two databases on one server (DATABASE_URL's, else the embedded one in .crawlfleet/bench-pg),
migrated and seeded with the same live work: 600 jobs finished in the last hour (so that every
listing has a first page on both), 10,000 queued hostless jobs, a running crawl with
2,000 queued and 200 leased jobs on 100 hosts, 20 workers. The deep one also gets the history
of bench/depth.py (--finished rows of a week-long crawl: succeeded with pages, dead with their
attempts) and both are VACUUM ANALYZEd.

Then --rounds rounds; in each, every query runs --calls times on each database (which goes first
alternates by round) as the coordinator runs it: a prepared statement, so after five calls
PostgreSQL may switch to its generic plan. Mutating queries (the claim, a retention batch) run in
a transaction that is rolled back. Per query and database: the median call of each round, as the
client timed it (ms) and as the server did (server_ms: planning and execution from EXPLAIN
(ANALYZE, TIMING OFF), without the round trip, whose jitter on a busy 2-core machine is larger
than a sub-millisecond query); the figures are min/median/max over rounds and deep/empty ratios
of the medians. Then EXPLAIN
(ANALYZE, BUFFERS) of each with the custom and the generic plan: shared buffers touched are a
measure of the work that the machine's load does not blur.

With --reuse the two databases get fixed names and are kept: the first run fills them, later ones
(same --finished) apply the migrations added since and measure, so a change is compared against
the same fill.

Progress goes to stdout; the last line is one JSON object with the figures.
"""

# ruff: noqa: E402 (sys.path is fixed before the imports, see below)

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [str(REPO) if Path(p or ".").resolve() == REPO / "bench" else p for p in sys.path]

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from bench import depth, procs
from bench.admin import literal, migrate
from bench.queue import admin_execute, create_bench_database, database_of, drop_bench_database, say, with_database
from crawlfleet.coordinator.storage import sql

MAX_ID = 2**63 - 1
LIVE_QUEUED = 10_000
LIVE_HOSTS = 100
RECENT_FINISHED = 600
# The databases --reuse fills once and measures again.
KEPT = {"empty": "crawlfleet_bench_flat_empty_kept", "deep": "crawlfleet_bench_flat_deep_kept"}

# The running crawl's jobs ($1: crawl, $2: now, $3: spec): 2,000 queued and 200 leased on 100 hosts.
SEED_CRAWL_JOBS = """
INSERT INTO jobs (kind, state, priority, spec, target_url, dedupe_key, run_at, created_at, attempt, max_attempts,
                  retry_initial_ms, retry_multiplier, retry_max_ms, lease_token, leased_by, leased_at,
                  lease_expires_at, host, crawl_id, depth)
SELECT 'scrape', CASE WHEN g <= 200 THEN 'leased' ELSE 'queued' END::job_state, 0, $3::bytea, url, 'url:' || url,
       $2::timestamptz - interval '1 minute', $2::timestamptz - interval '1 minute',
       (g <= 200)::int, 3, 1000, 2, 300000,
       CASE WHEN g <= 200 THEN gen_random_uuid() END, CASE WHEN g <= 200 THEN 'live-worker-' || (g % 20) END,
       CASE WHEN g <= 200 THEN $2::timestamptz END,
       CASE WHEN g <= 200 THEN $2::timestamptz + interval '1 hour' END,
       host, $1::bigint, 1
FROM (SELECT g, 'live' || lpad((g % 100)::text, 2, '0') || '.example' AS host,
             'https://live' || lpad((g % 100)::text, 2, '0') || '.example/item/' || g AS url
      FROM generate_series(1, 2200) AS g) AS rows
"""
SEED_CRAWL = """
INSERT INTO crawls (spec, max_depth, max_pages, max_pages_per_host, max_query_variants, priority, max_attempts,
                    retry_initial_ms, retry_multiplier, retry_max_ms, pages_enqueued, created_at, starts_at)
VALUES ($1, 3, 100000, 100000, 100, 0, 3, 1000, 2, 300000, 2200, $2::timestamptz - interval '1 minute',
        $2::timestamptz - interval '1 minute')
RETURNING id
"""
SEED_ATTEMPTS = """
INSERT INTO job_attempts (job_id, attempt, lease_token, worker_id, target_url, started_at, outcome)
SELECT id, 1, lease_token, leased_by, target_url, leased_at, 'running' FROM jobs WHERE state = 'leased'
"""
SEED_HOSTS = """
INSERT INTO hosts (host, ready_at, top_priority)
SELECT 'live' || lpad(h::text, 2, '0') || '.example', $1::timestamptz - interval '1 minute', 0
FROM generate_series(0, 99) AS h
"""
SEED_WORKERS = """
INSERT INTO workers (id, host, version, kinds, first_seen_at, last_seen_at)
SELECT 'live-worker-' || w, 'box-' || w, '0.1.0', ARRAY['scrape', 'noop'], $1::timestamptz - interval '1 day', now()
FROM generate_series(0, 19) AS w
"""


@dataclass(frozen=True)
class Case:
    name: str
    query: str
    params: Callable[[Seeded], Sequence[object]]
    # Changes rows: run in a transaction that is rolled back.
    mutating: bool = False


@dataclass(frozen=True)
class Seeded:
    now: dt.datetime
    crawl_id: int
    live_job_id: int


def cases() -> list[Case]:
    q = sql.query
    listing = q("job_list_filtered")
    by_state = q("job_list_by_state")

    def jobs(
        states: Sequence[str] = (),
        kind: str | None = None,
        url: str | None = None,
        error: str | None = None,
        window: bool = False,
    ) -> Callable[[Seeded], Sequence[object]]:
        # [states,] kind, url prefix, created after, created before, error type, before id, limit.
        def params(s: Seeded) -> Sequence[object]:
            after = s.now - dt.timedelta(hours=1) if window else None
            if states:  # job_list_by_state, as the coordinator runs it
                return [list(states), kind, url, after, None, error, MAX_ID, 50]
            return [kind, url, after, None, error, MAX_ID, 50]

        return params

    return [
        Case(
            "claim (Lease, 10 jobs)",
            q("job_lease_available"),
            # worker, max jobs, kinds, lease ms, now, principal, host concurrency, delay ms, robots, recheck ms.
            lambda s: ["bench-claimer", 10, [], 30_000, None, None, 10_000, 0, False, 1000],
            mutating=True,
        ),
        Case("GetQueueStats (job_count_by_kind_state)", q("job_count_by_kind_state"), lambda s: []),
        Case("count folding (job_count_fold)", q("job_count_fold"), lambda s: [], mutating=True),
        Case("GetQueueHealth (queue_health)", q("queue_health"), lambda s: [10_000, 2_000, None, 10_000]),
        Case("queue gauges (queue_oldest_due)", q("queue_oldest_due"), lambda s: [None]),
        Case("GetQueueHealth (worker_list_seen)", q("worker_list_seen"), lambda s: [s.now - dt.timedelta(minutes=5)]),
        Case("ListJobs first page", listing, jobs()),
        Case("ListJobs state=queued", by_state, jobs(["queued"])),
        Case("ListJobs state=leased", by_state, jobs(["leased"])),
        Case("ListJobs state=succeeded", by_state, jobs(["succeeded"])),
        Case("dead list (ListJobs state=dead)", by_state, jobs(["dead"])),
        Case("dead list error_type=http_5xx", by_state, jobs(["dead"], error=r"http\_5xx")),
        Case("ListJobs kind=scrape", listing, jobs(kind="scrape")),
        Case("ListJobs url_prefix", listing, jobs(url="https://live07.example/")),
        Case("ListJobs created in the last hour", listing, jobs(window=True)),
        Case("GetJob (job_get)", q("job_get"), lambda s: [s.live_job_id, None]),
        Case("GetJob (job_attempt_list)", q("job_attempt_list"), lambda s: [s.live_job_id]),
        # after host, prefix, paused only, queued only, limit, queued bound, now.
        Case("ListHosts", q("host_list"), lambda s: [None, None, False, False, 50, 10_000, None]),
        Case("ListHosts queued_only", q("host_list"), lambda s: [None, None, False, True, 50, 10_000, None]),
        Case("host gauges (host_gauges)", q("host_gauges"), lambda s: []),
        Case("host gauges (host_paused_by_reason)", q("host_paused_by_reason"), lambda s: [None]),
        Case("ListCrawls (crawl_list)", q("crawl_list"), lambda s: [None, 20, None]),
        Case("GetCrawl (crawl_get)", q("crawl_get"), lambda s: [s.crawl_id, None]),
        Case("GetCrawl (crawl_job_counts)", q("crawl_job_counts"), lambda s: [[s.crawl_id]]),
        Case("GetCrawl (crawl_error_counts)", q("crawl_error_counts"), lambda s: [s.crawl_id]),
        Case("GetCrawl (crawl_recent_pages)", q("crawl_recent_pages"), lambda s: [s.crawl_id, None]),
        Case("crawl finisher (crawl_finish_idle)", q("crawl_finish_idle"), lambda s: [None], mutating=True),
        # after id, limit, kind, max bytes, owner, url prefix.
        Case("ListResults first page", q("result_list_after"), lambda s: [0, 100, None, 3 * 1024 * 1024, None, None]),
        # Nothing is old enough on the empty one: this is the per-batch cost of a no-op pass there.
        Case(
            "retention batch (job_purge_finished)",
            q("job_purge_finished"),
            lambda s: [["succeeded", "dead", "cancelled", "skipped"], s.now - dt.timedelta(days=3), 1000],
            mutating=True,
        ),
    ]


async def seed_live(db: asyncpg.Connection) -> Seeded:
    """The live work both databases share: the last hour's finished jobs, a running crawl, a backlog."""
    await depth.fill(db, queued=0, finished=RECENT_FINISHED, history_days=1 / 24)
    now: dt.datetime = await db.fetchval("SELECT now()")
    before = int(await db.fetchval("SELECT coalesce(max(id), 0) FROM jobs"))
    scrape_spec, _, noop_spec, crawl_spec = depth._blobs()
    crawl_id = int(await db.fetchval(SEED_CRAWL, crawl_spec, now))
    await db.execute(SEED_CRAWL_JOBS, crawl_id, now, scrape_spec)
    await db.execute(SEED_ATTEMPTS)
    await db.execute(SEED_HOSTS, now)
    await db.execute(SEED_WORKERS, now)
    first = int(await db.fetchval("SELECT max(id) FROM jobs"))
    await db.execute(depth.FILL_QUEUED, 1, LIVE_QUEUED, first, now, noop_spec)
    await db.execute("SELECT setval(pg_get_serial_sequence('jobs', 'id'), $1)", first + LIVE_QUEUED)
    await db.execute(depth.COUNT_DELTAS, before)
    live_job_id = int(await db.fetchval("SELECT min(id) FROM jobs WHERE state = 'leased'"))
    return Seeded(now=now, crawl_id=crawl_id, live_job_id=live_job_id)


async def time_case(db: asyncpg.Connection, case: Case, params: Sequence[object], calls: int) -> float:
    """The median of `calls` executions of the prepared statement, in ms."""
    statement = await db.prepare(case.query)
    took = []
    for _ in range(calls):
        started = time.perf_counter()
        if case.mutating:
            transaction = db.transaction()
            await transaction.start()
            try:
                await statement.fetch(*params)
            finally:
                await transaction.rollback()
        else:
            await statement.fetch(*params)
        took.append((time.perf_counter() - started) * 1000)
    return statistics.median(took)


async def server_ms(db: asyncpg.Connection, case: Case, params: Sequence[object], calls: int) -> float:
    """The median of `calls` executions as the server timed them (planning and execution, from
    EXPLAIN (ANALYZE, TIMING OFF) of the prepared statement, each rolled back), in ms. The round
    trip to the client is left out: on this machine it varies by 50-100 µs from call to call (a
    `SELECT 1` took 38-122 µs), which drowns a query that takes a tenth of a millisecond."""
    args = ", ".join(literal(p) for p in params)
    await db.execute(f"PREPARE bench_s AS {case.query}")
    took = []
    try:
        for _ in range(calls):
            transaction = db.transaction()
            await transaction.start()
            try:
                text = await db.fetchval(
                    "EXPLAIN (ANALYZE, TIMING OFF, SUMMARY, FORMAT JSON) EXECUTE bench_s"
                    + (f"({args})" if params else "")
                )
            finally:
                await transaction.rollback()
            plan: dict[str, Any] = json.loads(text)[0]
            took.append(float(plan["Planning Time"]) + float(plan["Execution Time"]))
    finally:
        await db.execute("DEALLOCATE bench_s")
    return statistics.median(took)


async def buffers(db: asyncpg.Connection, case: Case, params: Sequence[object], mode: str) -> tuple[float, int]:
    """Execution ms and shared buffers (hit + read) of one EXPLAIN ANALYZE, rolled back."""
    args = ", ".join(literal(p) for p in params)
    await db.execute(f"PREPARE bench_q AS {case.query}")
    transaction = db.transaction()
    await transaction.start()
    try:
        await db.execute(f"SET LOCAL plan_cache_mode = force_{mode}_plan")
        text = await db.fetchval(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE bench_q" + (f"({args})" if params else "")
        )
        plan: dict[str, Any] = json.loads(text)[0]
    finally:
        await transaction.rollback()
        await db.execute("DEALLOCATE bench_q")
    total = plan["Plan"].get("Shared Hit Blocks", 0) + plan["Plan"].get("Shared Read Blocks", 0)
    return float(plan["Execution Time"]), int(total)


def spread(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3), "max": round(max(values), 3)}


async def open_databases(args: argparse.Namespace) -> tuple[str, dict[str, str], bool]:
    """The admin DSN, the two databases' DSNs, and whether they are filled and seeded already
    (--reuse: kept ones of an earlier run, whose fill is marked by the deep one's comment)."""
    if not args.reuse:
        admin_dsn, empty_name, empty_dsn, _ = await create_bench_database("crawlfleet_bench_flat_empty")
        deep_name = empty_name.replace("_empty_", "_deep_")
        await admin_execute(admin_dsn, f"CREATE DATABASE {deep_name}")
        return admin_dsn, {"empty": empty_dsn, "deep": with_database(admin_dsn, deep_name)}, False
    admin_dsn, probe_name, _, _ = await create_bench_database("crawlfleet_bench_flat_probe")
    await drop_bench_database(admin_dsn, probe_name)
    conn = await asyncpg.connect(admin_dsn)
    try:
        marks = {
            name: await conn.fetchval(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", kept
            )
            for name, kept in KEPT.items()
        }
        filled = marks["deep"] == fill_mark(args.finished) and marks["empty"] == fill_mark(0)
        if not filled:
            for kept in KEPT.values():
                await conn.execute(f"DROP DATABASE IF EXISTS {kept} WITH (FORCE)")
                await conn.execute(f"CREATE DATABASE {kept}")
    finally:
        await conn.close()
    return admin_dsn, {name: with_database(admin_dsn, kept) for name, kept in KEPT.items()}, filled


def fill_mark(finished: int) -> str:
    return f"admin_depth fill: {finished} finished, history pages {depth.HISTORY_FILLFACTOR}% full"


async def seeded(db: asyncpg.Connection) -> Seeded:
    """The seeds of seed_live, read back from a kept database: the running crawl, its first leased job."""
    row = await db.fetchrow(
        "SELECT id, created_at + interval '1 minute' AS now FROM crawls"
        " WHERE state = 'running' ORDER BY id DESC LIMIT 1"
    )
    assert row is not None, "a kept database without its running crawl"
    live_job_id = int(await db.fetchval("SELECT min(id) FROM jobs WHERE state = 'leased'"))
    return Seeded(now=row["now"], crawl_id=int(row["id"]), live_job_id=live_job_id)


async def run(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    admin_dsn, dsns, reused = await open_databases(args)
    children: list[procs.Child] = []
    load_start = os.getloadavg()[0]
    try:
        # On kept databases this applies the migrations added since they were filled.
        for dsn in dsns.values():
            await migrate(dsn, log_dir, children)
        settings = {"jit": "off"}
        empty = await asyncpg.connect(dsns["empty"], server_settings=settings)
        deep = await asyncpg.connect(dsns["deep"], server_settings=settings)
        try:
            seeds = {}
            if reused:
                say(f"reusing the filled databases {', '.join(KEPT.values())}")
                filled = depth.DepthFill(
                    queued=0,
                    finished=args.finished,
                    fill_s=0.0,
                    vacuum_s=0.0,
                    crawl_id=await deep.fetchval("SELECT min(id) FROM crawls"),
                    first_id=1,
                    last_id=args.finished,
                )
                for name, db in (("empty", empty), ("deep", deep)):
                    seeds[name] = await seeded(db)
                    await db.execute("ANALYZE", timeout=None)
            else:
                # History first, as it would be: the live work came after the week-long crawl.
                say(f"filling {args.finished:,} finished jobs into the deep database")
                filled = await depth.fill(deep, queued=0, finished=args.finished, say=say)
                for name, db in (("empty", empty), ("deep", deep)):
                    seeds[name] = await seed_live(db)
                    await db.execute("VACUUM ANALYZE", timeout=None)
                if args.reuse:
                    for name, db in (("empty", empty), ("deep", deep)):
                        mark = fill_mark(args.finished if name == "deep" else 0)
                        await db.execute(f"COMMENT ON DATABASE {KEPT[name]} IS {literal(mark)}")
                say("seeded both databases with the same live work")
            sizes = await deep.fetchrow(
                "SELECT pg_size_pretty(pg_total_relation_size('jobs')) AS jobs,"
                " pg_size_pretty(pg_total_relation_size('job_attempts')) AS attempts,"
                " pg_size_pretty(pg_total_relation_size('pages')) AS pages"
            )
            assert sizes is not None
            say(
                f"filled in {filled.fill_s:.0f}s, VACUUM ANALYZE {filled.vacuum_s:.0f}s; with indexes: jobs"
                f" {sizes['jobs']}, job_attempts {sizes['attempts']}, pages {sizes['pages']}"
            )
            dbs = {"empty": empty, "deep": deep}
            timings: dict[str, dict[str, list[float]]] = {}
            server: dict[str, dict[str, list[float]]] = {}
            for round_no in range(args.rounds):
                order = ("empty", "deep") if round_no % 2 == 0 else ("deep", "empty")
                for case in cases():
                    per_db = timings.setdefault(case.name, {"empty": [], "deep": []})
                    on_server = server.setdefault(case.name, {"empty": [], "deep": []})
                    for name in order:
                        params = case.params(seeds[name])
                        per_db[name].append(await time_case(dbs[name], case, params, args.calls))
                        on_server[name].append(await server_ms(dbs[name], case, params, args.calls))
                say(f"round {round_no + 1} of {args.rounds} done (load {os.getloadavg()[0]:.1f})")
            figures: dict[str, Any] = {}
            for case in cases():
                entry: dict[str, Any] = {name: spread(timings[case.name][name]) for name in ("empty", "deep")}
                entry["ratio_ms"] = round(entry["deep"]["median"] / entry["empty"]["median"], 2)
                entry["server_ms"] = {name: spread(server[case.name][name]) for name in ("empty", "deep")}
                entry["ratio_server_ms"] = round(
                    entry["server_ms"]["deep"]["median"] / entry["server_ms"]["empty"]["median"], 2
                )
                for mode in ("custom", "generic"):
                    explained = {name: await buffers(dbs[name], case, case.params(seeds[name]), mode) for name in dbs}
                    entry[f"buffers_{mode}"] = {name: explained[name][1] for name in dbs}
                figures[case.name] = entry
                say(
                    f"{case.name:45} empty {entry['empty']['median']:8.3f} ms  deep {entry['deep']['median']:8.3f} ms"
                    f"  ratio {entry['ratio_ms']:5.2f}  server ms {entry['server_ms']['empty']['median']:.3f}"
                    f" / {entry['server_ms']['deep']['median']:.3f} ratio {entry['ratio_server_ms']:5.2f}"
                    f"  buffers custom {entry['buffers_custom']}"
                    f" generic {entry['buffers_generic']}"
                )
            history = depth_crawl_report(filled.crawl_id)
            for name, query, params in history:
                started = time.perf_counter()
                await deep.fetch(query, *params)
                figures[name] = {"deep_ms": round((time.perf_counter() - started) * 1000, 3)}
                say(f"{name:45} deep {figures[name]['deep_ms']:8.3f} ms (no counterpart on the empty table)")
        finally:
            await empty.close()
            await deep.close()
        return {
            "finished": args.finished,
            "rounds": args.rounds,
            "calls": args.calls,
            **filled.figures(),
            "queries": figures,
            "loadavg_start_end": [round(load_start, 1), round(os.getloadavg()[0], 1)],
        }
    finally:
        procs.kill_all(children)
        if args.keep or args.reuse:
            say(f"kept: {dsns['empty']} {dsns['deep']}")
        else:
            for dsn in dsns.values():
                await drop_bench_database(admin_dsn, database_of(dsn))


def depth_crawl_report(crawl_id: int | None) -> list[tuple[str, str, list[object]]]:
    """GetCrawl of the week-long crawl itself: its report reads its own history."""
    if crawl_id is None:
        return []
    q = sql.query
    calls: list[tuple[str, list[object]]] = [
        ("crawl_job_counts", [[crawl_id]]),
        ("crawl_error_counts", [crawl_id]),
        ("crawl_recent_pages", [crawl_id, None]),
    ]
    return [(f"GetCrawl of the history crawl ({name})", q(name), params) for name, params in calls]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--finished", type=int, default=10_000_000, help="history rows of the deep database")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every query and both databases")
    parser.add_argument("--calls", type=int, default=15, help="calls per query, database and round")
    parser.add_argument("--keep", action="store_true", help="keep both databases (to EXPLAIN by hand)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="fill two fixed databases once and keep them; later runs with the same --finished only migrate and"
        " measure them (before/after a change on the same fill)",
    )
    args = parser.parse_args()
    if min(args.rounds, args.calls) < 1 or args.finished < 0:
        sys.exit("--rounds and --calls must be at least 1, --finished not negative")
    log_dir = Path(tempfile.mkdtemp(prefix="crawlfleet-bench-flat-"))
    say(f"child logs in {log_dir}")
    print(json.dumps(asyncio.run(run(args, log_dir))), flush=True)


if __name__ == "__main__":
    main()
