"""graphile-worker's queue throughput, as a peer for bench/queue.py on the same PostgreSQL server.

    python bench/graphile_queue.py --jobs 20000 [--workers 2] [--concurrency 24] [--local-queue 500]

Installs graphile-worker (GRAPHILE_WORKER_VERSION, pinned) with npm into .crawlfleet/ once, then in
a fresh database of the server bench/queue.py uses (DATABASE_URL's, else the embedded one in
.crawlfleet/bench-pg):

1. enqueue_per_s: N no-op jobs added with its addJobs (one add_jobs call per --batch jobs), before
   any worker runs.
2. jobs_per_s: W worker processes (graphile-worker's `run`, each with --concurrency jobs at once)
   drain them with its fastest documented settings: a local queue of --local-queue jobs (jobs
   fetched and locked in batches) and batched completes and failures (--complete-batch-delay ms).

jobs_per_s is N / (last finished - first started) from the database clock, the same measure as
bench/queue.py's: graphile-worker deletes a job when it completes, so statement-level triggers
(added after the enqueue, one row per statement that changed rows) note the transaction time of
every statement that locked jobs (UPDATE) and of every one that completed them (DELETE).

Progress goes to stdout; the last line is one JSON object with the figures.
"""

# ruff: noqa: E402 (sys.path is fixed before the imports, see below)

from __future__ import annotations

import sys
from pathlib import Path

# As in bench/queue.py: bench/ first on sys.path would shadow the stdlib `queue`.
REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [str(REPO) if Path(p or ".").resolve() == REPO / "bench" else p for p in sys.path]

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
import time
from typing import Any

import asyncpg

from bench import procs
from bench.queue import START_TIMEOUT, STOP_TIMEOUT, create_bench_database, drop_bench_database, say

GRAPHILE_WORKER_VERSION = "0.17.3"
INSTALL_DIR = REPO / ".crawlfleet" / f"graphile-worker-{GRAPHILE_WORKER_VERSION}"
SCRIPT = REPO / "bench" / "graphile_queue.cjs"
POLL_SECONDS = 0.05
PROGRESS_SECONDS = 2.0

# Statement-level triggers with transition tables: one row per statement that changed jobs, so
# the bookkeeping costs graphile-worker one small insert per batch, not per job.
MARKS_SQL = """
CREATE UNLOGGED TABLE bench_marks (event text NOT NULL, at timestamptz NOT NULL);
CREATE FUNCTION bench_mark_locked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_marks SELECT 'locked', now() WHERE EXISTS (SELECT 1 FROM changed);
    RETURN NULL;
END $$;
CREATE FUNCTION bench_mark_completed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_marks SELECT 'completed', now() WHERE EXISTS (SELECT 1 FROM changed);
    RETURN NULL;
END $$;
CREATE TRIGGER bench_locked AFTER UPDATE ON graphile_worker._private_jobs
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION bench_mark_locked();
CREATE TRIGGER bench_completed AFTER DELETE ON graphile_worker._private_jobs
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION bench_mark_completed();
"""
SPAN_QUERY = """
SELECT extract(epoch FROM max(at) FILTER (WHERE event = 'completed') - min(at) FILTER (WHERE event = 'locked'))
FROM bench_marks
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs to enqueue and drain (N)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (W)")
    parser.add_argument("--concurrency", type=int, default=24, help="jobs each worker runs at once")
    parser.add_argument("--local-queue", type=int, default=500, help="jobs a worker fetches and locks at once")
    parser.add_argument("--complete-batch-delay", type=int, default=0, help="ms a complete waits for others")
    parser.add_argument("--batch", type=int, default=1000, help="jobs per addJobs call in phase 1")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound on each phase, seconds")
    return parser.parse_args()


def install() -> Path:
    """graphile-worker's package directory, installed with npm on first use."""
    package = INSTALL_DIR / "node_modules" / "graphile-worker"
    if not (package / "package.json").exists():
        say(f"installing graphile-worker {GRAPHILE_WORKER_VERSION} into {INSTALL_DIR}")
        INSTALL_DIR.mkdir(parents=True, exist_ok=True)
        (INSTALL_DIR / "package.json").write_text('{"private": true}\n')
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", f"graphile-worker@{GRAPHILE_WORKER_VERSION}"],
            cwd=INSTALL_DIR,
            check=True,
        )
    return package


def node(package: Path, dsn: str, *args: str, timeout: float) -> str:
    """Run one command of the Node side to its end; its stdout."""
    env = {**os.environ, "DATABASE_URL": dsn, "GRAPHILE_WORKER_MODULE": str(package)}
    done = subprocess.run(
        ["node", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"node {' '.join(args)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done.stdout


def start_worker(package: Path, dsn: str, args: argparse.Namespace, index: int, log_dir: Path) -> procs.Child:
    log_path = log_dir / f"graphile-worker-{index}.log"
    env = {**os.environ, "DATABASE_URL": dsn, "GRAPHILE_WORKER_MODULE": str(package)}
    argv = [str(args.concurrency), str(args.local_queue), str(args.complete_batch_delay)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["node", str(SCRIPT), "work", *argv], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    return procs.Child(f"graphile-worker-{index}", proc, log_path)


async def wait_drained(db: asyncpg.Connection, children: list[procs.Child], timeout: float) -> None:
    """Poll until no job is left (graphile-worker deletes completed jobs) and none failed."""
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + PROGRESS_SECONDS
    while True:
        row = await db.fetchrow(
            "SELECT EXISTS (SELECT 1 FROM graphile_worker._private_jobs) AS live,"
            " EXISTS (SELECT 1 FROM graphile_worker._private_jobs WHERE last_error IS NOT NULL) AS failed"
        )
        assert row is not None
        if row["failed"]:
            raise RuntimeError("a graphile-worker job failed")
        if not row["live"]:
            return
        procs.check_running(children)
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs still queued after {timeout}s")
        if time.monotonic() > next_report:
            left = await db.fetchval("SELECT count(*) FROM graphile_worker._private_jobs")
            say(f"  {left} jobs left")
            next_report += PROGRESS_SECONDS
        await asyncio.sleep(POLL_SECONDS)


async def run(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    package = install()
    admin_dsn, db_name, dsn, postmaster = await create_bench_database("graphile_bench")
    workers: list[procs.Child] = []
    try:
        await asyncio.to_thread(node, package, dsn, "migrate", timeout=START_TIMEOUT)
        output = await asyncio.to_thread(
            node, package, dsn, "enqueue", str(args.jobs), str(args.batch), timeout=args.timeout
        )
        enqueue_s = float(json.loads(output.strip().splitlines()[-1])["enqueue_s"])
        say(f"phase 1: enqueued {args.jobs} jobs in {enqueue_s:.2f}s ({args.jobs / enqueue_s:,.0f}/s)")

        db = await asyncpg.connect(dsn, timeout=START_TIMEOUT)
        try:
            await db.execute(MARKS_SQL)
            workers = [start_worker(package, dsn, args, i, log_dir) for i in range(args.workers)]
            meter = procs.CpuMeter({"workers": [w.pid for w in workers], "bench": [os.getpid()]}, postmaster=postmaster)
            meter.start()
            say(
                f"phase 2: started {args.workers} graphile-worker processes x {args.concurrency} concurrency,"
                f" local queue {args.local_queue}, complete batch delay {args.complete_batch_delay} ms"
            )
            await wait_drained(db, workers, args.timeout)
            cpu_drain = meter.read()
            span = float(await db.fetchval(SPAN_QUERY))
            rate = args.jobs / span
            say(f"phase 2: {args.jobs} jobs locked->completed in {span:.2f}s ({rate:,.0f}/s), CPU s {cpu_drain}")
        finally:
            await db.close()
        await procs.stop_all(workers, STOP_TIMEOUT)
        say("graphile-worker processes stopped with status 0")
        return {
            "system": f"graphile-worker {GRAPHILE_WORKER_VERSION}",
            "jobs": args.jobs,
            "workers": args.workers,
            "concurrency": args.concurrency,
            "local_queue": args.local_queue,
            "complete_batch_delay_ms": args.complete_batch_delay,
            "batch": args.batch,
            "jobs_per_s": round(args.jobs / span, 1),
            "enqueue_per_s": round(args.jobs / enqueue_s, 1),
            "drain_span_s": round(span, 3),
            "cpu_s_drain": cpu_drain,
        }
    finally:
        procs.kill_all(workers)
        await drop_bench_database(admin_dsn, db_name)


def main() -> None:
    args = parse_args()
    if min(args.jobs, args.workers, args.concurrency, args.local_queue, args.batch) < 1:
        sys.exit("--jobs, --workers, --concurrency, --local-queue and --batch must be at least 1")
    log_dir = Path(tempfile.mkdtemp(prefix="graphile-bench-"))
    say(f"child logs in {log_dir}")
    result = asyncio.run(run(args, log_dir))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
