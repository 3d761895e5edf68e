"""What retention costs: deleting a day of a week's history in batches, then the vacuum after it.

    python bench/retention.py --finished 2000000 [--batch 1000]

A fresh database (DATABASE_URL's server, else the embedded one in .crawlfleet/bench-pg) gets the
history of bench/depth.py: --finished jobs of a crawl that ran over the last 7 days (succeeded
with pages, dead, with their attempts), VACUUM ANALYZEd. Then:

1. Retention as the coordinator runs it (AdminQueue.purge, the advisory-lock turn included), with
   a 6-day limit: batches of --batch jobs until one comes back short. Figures: jobs deleted per
   second, and the batch times (p50, p99, max): a batch's locks last that long.
2. VACUUM of jobs, job_attempts and pages, timed (autovacuum would do it in the background), and
   the tables' sizes before deleting, after deleting and after the vacuum: the space deleted rows
   leave is reused by new rows, not returned to the file system.

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
import tempfile
import time
from typing import Any

import asyncpg

from bench import depth, procs
from bench.admin import migrate
from bench.queue import create_bench_database, drop_bench_database, percentile, say
from crawlfleet.coordinator.retention import DEAD, KEPT_FOR_RETENTION
from crawlfleet.coordinator.storage.admin import AdminQueue

SIZES = """
SELECT relname, pg_total_relation_size(oid) AS bytes FROM pg_class
WHERE relname IN ('jobs', 'job_attempts', 'pages') ORDER BY relname
"""
KEEP_DAYS = 6


async def sizes(db: asyncpg.Connection) -> dict[str, int]:
    return {r["relname"]: int(r["bytes"]) for r in await db.fetch(SIZES)}


async def run(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    admin_dsn, db_name, dsn, _ = await create_bench_database("crawlfleet_bench_retention")
    children: list[procs.Child] = []
    load_start = os.getloadavg()[0]
    try:
        await migrate(dsn, log_dir, children)
        db = await asyncpg.connect(dsn, server_settings={"jit": "off"})
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            filled = await depth.fill(db, queued=0, finished=args.finished, say=say)
            say(f"filled {args.finished:,} finished jobs in {filled.fill_s:.0f}s")
            before = await sizes(db)
            now: dt.datetime = await db.fetchval("SELECT now()")
            bound = now - dt.timedelta(days=KEEP_DAYS)
            admin = AdminQueue(pool)
            batch_ms: list[float] = []
            deleted = 0
            started = time.perf_counter()
            for states in (KEPT_FOR_RETENTION, DEAD):
                while True:
                    batch_started = time.perf_counter()
                    purged = await admin.purge(states=states, finished_before=bound, limit=args.batch, wait=False)
                    batch_ms.append((time.perf_counter() - batch_started) * 1000)
                    assert purged is not None  # nothing else removes here
                    deleted += purged.deleted_jobs
                    if purged.deleted_jobs < args.batch:
                        break
            delete_s = time.perf_counter() - started
            batch_ms.sort()
            say(
                f"deleted {deleted:,} jobs in {len(batch_ms)} batches, {delete_s:.1f}s ({deleted / delete_s:,.0f}/s);"
                f" batch p50 {percentile(batch_ms, 0.5):.1f} ms, p99 {percentile(batch_ms, 0.99):.1f} ms"
            )
            after_delete = await sizes(db)
            started = time.perf_counter()
            await db.execute("VACUUM jobs, job_attempts, pages", timeout=None)
            vacuum_s = time.perf_counter() - started
            after_vacuum = await sizes(db)
            say(f"VACUUM after the deletes: {vacuum_s:.1f}s; sizes {before} -> {after_delete} -> {after_vacuum}")
            left = await db.fetchval("SELECT count(*) FROM jobs WHERE finished_at < $1", bound)
            if left:
                raise RuntimeError(f"{left} jobs past the bound are left")
        finally:
            await pool.close()
            await db.close()
        return {
            "finished": args.finished,
            "batch": args.batch,
            "deleted_jobs": deleted,
            "batches": len(batch_ms),
            "delete_s": round(delete_s, 2),
            "deleted_per_s": round(deleted / delete_s, 1),
            "batch_ms": {
                "p50": round(percentile(batch_ms, 0.5), 2),
                "p99": round(percentile(batch_ms, 0.99), 2),
                "max": round(batch_ms[-1], 2),
            },
            "vacuum_s": round(vacuum_s, 2),
            "bytes_before": before,
            "bytes_after_delete": after_delete,
            "bytes_after_vacuum": after_vacuum,
            **filled.figures(),
            "loadavg_start_end": [round(load_start, 1), round(os.getloadavg()[0], 1)],
        }
    finally:
        procs.kill_all(children)
        await drop_bench_database(admin_dsn, db_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--finished", type=int, default=2_000_000, help="history rows (a week's)")
    parser.add_argument("--batch", type=int, default=1000, help="jobs per retention batch")
    args = parser.parse_args()
    if args.finished < 1 or args.batch < 1:
        sys.exit("--finished and --batch must be at least 1")
    log_dir = Path(tempfile.mkdtemp(prefix="crawlfleet-bench-retention-"))
    print(json.dumps(asyncio.run(run(args, log_dir))), flush=True)


if __name__ == "__main__":
    main()
