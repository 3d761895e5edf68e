"""crawlfleet's queue against graphile-worker's, side by side, in alternating rounds on one server.

    python bench/queue_vs_graphile.py [--rounds 3] [--jobs 20000] [--workers 2] [--slots 200]
        [--queue-arg=--hosts=0 ...] [--graphile-arg=--concurrency=24 ...]

Each round runs bench/queue.py (one coordinator and W worker processes over gRPC, no-op jobs) and
then bench/graphile_queue.py (W graphile-worker processes, local queue and batched completes), in
turn, against the same PostgreSQL server (DATABASE_URL's, else the embedded one in
.crawlfleet/bench-pg): load on the machine then falls on both alike. Both report the same figure,
jobs / (last finished - first started) from the database clock.

Prints each round's figures and the load average around it, then min/median/max per system and the
ratio of medians (crawlfleet / graphile-worker); the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both systems (at least 3 for a median)")
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per run (N)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of each system (W)")
    parser.add_argument("--slots", type=int, default=200, help="crawlfleet's slots per worker")
    parser.add_argument("--queue-arg", action="append", default=[], help="extra bench/queue.py flag")
    parser.add_argument("--graphile-arg", action="append", default=[], help="extra bench/graphile_queue.py flag")
    parser.add_argument("--timeout", type=float, default=900.0, help="bound on one run, seconds")
    return parser.parse_args()


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_bench(script: str, flags: list[str], timeout: float) -> dict[str, Any]:
    """Run one bench script to its end; the JSON object of its last line."""
    argv = [sys.executable, str(REPO / "bench" / script), *flags]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{script} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def summary(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main() -> None:
    args = parse_args()
    if min(args.rounds, args.jobs, args.workers, args.slots) < 1:
        sys.exit("--rounds, --jobs, --workers and --slots must be at least 1")
    common = [f"--jobs={args.jobs}", f"--workers={args.workers}"]
    queue_flags = [*common, f"--slots={args.slots}", *args.queue_arg]
    graphile_flags = [*common, *args.graphile_arg]
    rounds: list[dict[str, Any]] = []
    for n in range(1, args.rounds + 1):
        load_before = os.getloadavg()[0]
        ours = run_bench("queue.py", queue_flags, args.timeout)
        theirs = run_bench("graphile_queue.py", graphile_flags, args.timeout)
        row = {
            "round": n,
            "crawlfleet_jobs_per_s": ours["jobs_per_s"],
            "graphile_jobs_per_s": theirs["jobs_per_s"],
            "crawlfleet_enqueue_per_s": ours["enqueue_per_s"],
            "graphile_enqueue_per_s": theirs["enqueue_per_s"],
            "crawlfleet_latency_p99_ms": ours["latency_p99_ms"],
            "crawlfleet_cpu_s_drain": ours["cpu_s_drain"],
            "graphile_cpu_s_drain": theirs["cpu_s_drain"],
            "load_1min_before": round(load_before, 2),
            "load_1min_after": round(os.getloadavg()[0], 2),
        }
        rounds.append(row)
        say(
            f"round {n}: crawlfleet {ours['jobs_per_s']:,.0f} jobs/s (cpu_s_other {ours['cpu_s_drain']['other']}),"
            f" graphile-worker {theirs['jobs_per_s']:,.0f} jobs/s (cpu_s_other {theirs['cpu_s_drain']['other']}),"
            f" load {row['load_1min_before']} -> {row['load_1min_after']}"
        )
    ours_summary = summary([r["crawlfleet_jobs_per_s"] for r in rounds])
    theirs_summary = summary([r["graphile_jobs_per_s"] for r in rounds])
    ratio = ours_summary["median"] / theirs_summary["median"]
    say(
        f"crawlfleet jobs/s min/median/max {ours_summary['min']:,.0f} / {ours_summary['median']:,.0f} /"
        f" {ours_summary['max']:,.0f}; graphile-worker {theirs_summary['min']:,.0f} /"
        f" {theirs_summary['median']:,.0f} / {theirs_summary['max']:,.0f}; ratio of medians {ratio:.2f}"
    )
    result = {
        "rounds": rounds,
        "crawlfleet_jobs_per_s": ours_summary,
        "graphile_jobs_per_s": theirs_summary,
        "ratio_of_medians": round(ratio, 3),
        "queue_flags": queue_flags,
        "graphile_flags": graphile_flags,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
