"""Scrape throughput: one coordinator and W worker processes scraping a local site on loopback,
and optionally Scrapy scraping the same pages in the same run.

    python bench/scrape.py --pages 300 --workers 2 [--slots 8] [--images-per-page 3] [--browser-pages 30]
                           [--rounds 3] [--scrapy-python /tmp/scrapy-venv/bin/python] [--profile]

The site (bench/site.py) serves generated product pages, each with text, links and K images drawn
from a pool of distinct generated JPEGs and PNGs, so images repeat across pages and their dedupe
matters. The database is DATABASE_URL's server if set, else an embedded PostgreSQL in
.crawlfleet/bench-pg, with a fresh database for each round (dropped at its end). Phases, timed from
the database clock (first attempt started to last job finished):

0. warm-up (unless --no-warmup): a few HTTP and browser jobs one at a time, on pages under /warm/
   whose images have URLs of their own, so that the workers' image pools and browsers have
   started before anything is measured, and no image the measured pages show is cached yet.
1. http_pages_per_s: N pages rendered with HTTP; images_per_s is the page images processed (with
   a sha256) in the same window.
2. browser_pages_per_s: M other pages rendered in Chromium (their images are processed too).

With --scrapy-python (a virtualenv with Scrapy and Pillow, see bench/scrapy_scrape.py), each round
then runs Scrapy on the HTTP phase's N pages with CONCURRENT_REQUESTS = W x slots and its
ImagesPipeline making 128 and 512 pixel thumbnails; rounds alternate crawlfleet and Scrapy. The
coordinator sets no per-host limit (bench/procs.py, UNPACED_HOST_FLAGS): the W x slots bound the
work in flight on both sides. Each
round starts fresh processes (so empty image caches) and Scrapy a fresh image store.

Progress goes to stdout; the last line is one JSON object: medians, `ratio` (crawlfleet's HTTP
pages/s median over Scrapy's), min/median/max per tool, and every round's figures. Per phase:
cpu_s is CPU seconds per process group (from /proc): `image_pool` is the workers' Python children,
`browser` their other descendants (Playwright's driver and Chromium), `bench` includes the site's
server, `other` is the rest of the host, i.e. the noise the figures suffered. cpu_ms_per_page
splits it by stage: the image pool, browser, coordinator and PostgreSQL by their processes; the
workers' own CPU by py-spy samples of worker 0 (--profile; `worker_unsplit` without it) sorted into
fetch, parse, images, grpc and other by the code on the stack (bench/stage_cpu.py).
stage_wall_ms_per_page is the workers' own stage timers (crawlfleet_worker_stage_seconds, read from
their metrics endpoints): wall time per page in each stage, waits included. --profile costs CPU: do
not compare its pages/s with unprofiled runs.
"""

# ruff: noqa: E402 (sys.path is fixed before the imports, see below)

from __future__ import annotations

import sys
from pathlib import Path

# As in bench/queue.py: bench/ first on sys.path would shadow the stdlib `queue` (and `site`).
REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [str(REPO) if Path(p or ".").resolve() == REPO / "bench" else p for p in sys.path]

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import grpc
from google.protobuf.duration_pb2 import Duration

from bench import procs, stage_cpu
from bench.queue import create_bench_database, drop_bench_database, say, wait_all_succeeded
from bench.site import BenchSite
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import job_queue_pb2_grpc, jobs_pb2

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0  # a worker closes its browsers and image pool on the way out
CALL_TIMEOUT = 60.0
ENQUEUE_BATCH = 1000
POLL_SECONDS = 0.05
RENDER = {"http": jobs_pb2.RENDER_MODE_HTTP, "browser": jobs_pb2.RENDER_MODE_BROWSER}
# One retry, soon: a bench run should finish, and report that it needed retries.
RETRY_POLICY = jobs_pb2.RetryPolicy(
    maximum_attempts=2, initial_interval=Duration(nanos=100_000_000), maximum_interval=Duration(nanos=100_000_000)
)
PHASE_QUERY = """
SELECT count(*) AS jobs,
       count(*) FILTER (WHERE attempt > 1) AS retried,
       (SELECT count(*) FROM pages WHERE job_id = ANY($1::bigint[]) AND rendered_with = $2) AS pages,
       extract(epoch FROM max(finished_at)
               - (SELECT min(started_at) FROM job_attempts WHERE job_id = ANY($1::bigint[]))) AS span,
       avg(octet_length(result))::bigint AS result_bytes_avg,
       (SELECT percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
          FROM job_attempts WHERE job_id = ANY($1::bigint[]) AND outcome = 'succeeded') AS job_s
FROM jobs WHERE id = ANY($1::bigint[])
"""
PHASE_IMAGES_QUERY = """
SELECT count(*) FILTER (WHERE image_sha256 IS NOT NULL) AS processed,
       count(*) FILTER (WHERE image_sha256 IS NULL) AS failed,
       (SELECT coalesce(sum(octet_length(t.data)), 0) FROM page_images p JOIN thumbnails t USING (image_sha256)
         WHERE p.job_id = ANY($1::bigint[])) AS thumbnail_bytes_shown,
       (SELECT string_agg(DISTINCT error_type, ',') FROM page_images
         WHERE job_id = ANY($1::bigint[]) AND image_sha256 IS NULL) AS error_types
FROM page_images WHERE job_id = ANY($1::bigint[])
"""
STORE_QUERY = """
SELECT (SELECT count(*) FROM images) AS distinct_images, count(*) AS thumbnails,
       coalesce(sum(octet_length(data)), 0) AS thumbnail_bytes,
       (SELECT count(*) FROM pages) AS stored_pages,
       -- Jobs (with their results) and pages, out-of-line values and indexes included.
       pg_total_relation_size('jobs') + pg_total_relation_size('pages') AS job_and_page_bytes
FROM thumbnails
"""
FAILURES_QUERY = "SELECT id, last_error FROM jobs WHERE state IN ('dead', 'cancelled') ORDER BY id LIMIT 5"
WORKER_SPREAD_QUERY = "SELECT worker_id, count(*) AS n FROM job_attempts WHERE job_id = ANY($1::bigint[]) GROUP BY 1"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=300, help="pages of the HTTP phase (N)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (W)")
    parser.add_argument("--slots", type=int, default=8, help="slots per worker")
    parser.add_argument("--images-per-page", type=int, default=3, help="<img> per page (K), also the og:image")
    parser.add_argument("--image-pool", type=int, default=50, help="distinct images the pages draw from")
    parser.add_argument("--browser-pages", type=int, default=30, help="pages of the browser phase (M); 0 skips it")
    parser.add_argument("--browser-settle-timeout", type=float, default=2.0, help="the workers' flag of that name")
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=True, help="phase 0")
    parser.add_argument("--timeout", type=float, default=600.0, help="bound on each phase, seconds")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each tool, alternating")
    parser.add_argument("--scrapy-python", help="a Python with Scrapy: also scrape the HTTP phase's pages with Scrapy")
    parser.add_argument("--profile", action="store_true", help="py-spy record worker 0 during each phase")
    parser.add_argument("--worker-log-level", default="WARNING", help="the workers' --log-level")
    parser.add_argument("--worker-arg", action="append", default=[], help="extra worker flag, e.g. =--max-images=1")
    return parser.parse_args()


def job_specs(
    site: BenchSite, indexes: range, mode: str, query: str = "", warm: bool = False
) -> list[jobs_pb2.JobSpec]:
    url = site.warm_url if warm else site.url
    return [
        jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url=url(i, query), render=RENDER[mode]), retry_policy=RETRY_POLICY)
        for i in indexes
    ]


async def enqueue(stub: job_queue_pb2_grpc.JobQueueAsyncStub, specs: list[jobs_pb2.JobSpec], batch: int) -> list[int]:
    ids: list[int] = []
    for offset in range(0, len(specs), batch):
        response = await stub.Enqueue(pb.EnqueueRequest(jobs=specs[offset : offset + batch]), timeout=CALL_TIMEOUT)
        ids.extend(job.id for job in response.jobs)
    return ids


async def wait_done(db: asyncpg.Connection, children: list[procs.Child], total: int, timeout: float) -> None:
    """bench/queue.py's wait, with the errors of failed jobs in its message."""
    try:
        await wait_all_succeeded(db, children, total, timeout)
    except RuntimeError as exc:
        failures = [f"job {r['id']}: {r['last_error']}" for r in await db.fetch(FAILURES_QUERY)]
        raise RuntimeError("\n  ".join([str(exc), *failures])) from exc


async def wait_workers_seen(db: asyncpg.Connection, children: list[procs.Child], count: int) -> None:
    """Until every worker has called Lease once (whatever their log level, they log nothing then)."""
    deadline = time.monotonic() + START_TIMEOUT
    while await db.fetchval("SELECT count(*) FROM workers") < count:
        procs.check_running(children)
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} workers reached the coordinator within {START_TIMEOUT}s")
        await asyncio.sleep(POLL_SECONDS)


def cpu_groups(coordinator: procs.Child, workers: list[procs.Child]) -> Callable[[], dict[str, list[int]]]:
    """Process groups for procs.CpuMeter, looked up at each reading: pools and browsers come and go."""

    def groups() -> dict[str, list[int]]:
        tree = procs.descendants([w.pid for w in workers])
        return {
            "coordinator": [coordinator.pid],
            "workers": [w.pid for w in workers],
            "image_pool": [pid for pid, command in tree if command.startswith("python")],
            "browser": [pid for pid, command in tree if not command.startswith("python")],
            "bench": [os.getpid()],
        }

    return groups


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy recording pid in collapsed-stack format (its image pool is measured from /proc)."""
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        say("  --profile: py-spy not found, not profiling")
        return None
    # --gil: only the thread running Python counts; py-spy takes threads blocked in C for busy ones.
    argv = [py_spy, "record", "--pid", str(pid), "--gil", "--format", "raw", "--rate", "100", "-o", str(out)]
    with out.with_suffix(".log").open("wb") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)


def stop_profiler(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is not None and profiler.poll() is None:
        profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            profiler.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            profiler.kill()
            profiler.wait()


async def run_phase(
    name: str,
    ids_of: Callable[[], Awaitable[list[int]]],
    *,
    db: asyncpg.Connection,
    children: list[procs.Child],
    meter: procs.CpuMeter,
    profile_pid: int | None,
    metrics_urls: list[str],
    log_dir: Path,
    timeout: float,
    round_index: int,
) -> tuple[list[int], dict[str, Any]]:
    """Enqueue a phase's jobs (ids_of), wait for all of them, and read its figures from the database."""
    profile = log_dir / f"profile-{name}-{round_index}.txt"
    profiler = start_profiler(profile_pid, profile) if profile_pid else None
    try:
        stages_before = [stage_cpu.stage_seconds(url) for url in metrics_urls]
        meter.start()
        started = time.perf_counter()
        ids = await ids_of()
        total = await db.fetchval("SELECT count(*) FROM jobs")
        await wait_done(db, children, total, timeout)
        wall_s = time.perf_counter() - started
        cpu = meter.read()
        stages_after = [stage_cpu.stage_seconds(url) for url in metrics_urls]
    finally:
        stop_profiler(profiler)
    deltas = {
        stage: sum(
            after.get(stage, 0.0) - before.get(stage, 0.0)
            for before, after in zip(stages_before, stages_after, strict=True)
        )
        for stage in stages_after[0]
    }
    # The workers' image counts in the phase: downloads, found in the fleet's index, processed.
    image_counts = {key.removeprefix("images_"): int(n) for key, n in deltas.items() if key.startswith("images_")}
    stage_wall = {stage: seconds for stage, seconds in deltas.items() if not stage.startswith("images_")}
    row = await db.fetchrow(PHASE_QUERY, ids, name)
    images = await db.fetchrow(PHASE_IMAGES_QUERY, ids)
    assert row is not None and images is not None
    if row["pages"] != len(ids):
        raise RuntimeError(f"{name}: {row['pages']} pages stored rendered with {name}, expected {len(ids)}")
    span = float(row["span"])
    job_p50, job_p90 = row["job_s"]
    figures = {
        "span_s": round(span, 3),
        "wall_s": round(wall_s, 3),
        "pages_per_s": round(len(ids) / span, 2),
        "images_processed": images["processed"],
        "images_failed": images["failed"],
        "images_per_s": round(images["processed"] / span, 2),
        "image_error_types": images["error_types"] or "",
        # What the pages' results show (carried or referred to), not what crossed the wire.
        "thumbnail_bytes_shown": images["thumbnail_bytes_shown"],
        "worker_images": image_counts,
        "result_bytes_avg": row["result_bytes_avg"],
        "job_s_p50": round(job_p50, 3),
        "job_s_p90": round(job_p90, 3),
        "retried": row["retried"],
        "cpu_s": cpu,
        # Wall time in each stage, summed over the jobs (they overlap): where a job waits.
        "stage_wall_ms_per_page": stage_cpu.per_page_ms(stage_wall, len(ids)),
        # CPU by stage; the workers' own share is split only with --profile.
        "cpu_ms_per_page": stage_cpu.split_cpu(cpu, stage_cpu.samples_by_stage(profile), len(ids)),
    }
    say(
        f"{name}: {len(ids)} pages in {span:.2f}s ({figures['pages_per_s']}/s), {images['processed']} images"
        f" ({figures['images_per_s']}/s), job p50 {job_p50:.3f}s p90 {job_p90:.3f}s, CPU s {cpu}"
    )
    say(f"  worker images {image_counts}")
    say(f"  CPU ms/page by stage {figures['cpu_ms_per_page']}; wall ms/page {figures['stage_wall_ms_per_page']}")
    return ids, figures


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_worker(args: argparse.Namespace, address: str, index: int, log_dir: Path, metrics_port: int) -> procs.Child:
    argv = ["-m", "crawlfleet.worker", "--coordinator", address, "--allow-loopback", "--kinds", "scrape"]
    argv += ["--slots", str(args.slots), "--worker-id", f"bench-{os.getpid()}-{index}"]
    argv += ["--metrics-listen", f"127.0.0.1:{metrics_port}"]
    argv += ["--browser-settle-timeout", str(args.browser_settle_timeout), "--log-level", args.worker_log_level]
    return procs.start_python(f"worker-{index}", [*argv, *args.worker_arg], log_dir=log_dir, cwd=REPO)


async def crawlfleet_round(
    args: argparse.Namespace, site: BenchSite, log_dir: Path, round_index: int
) -> dict[str, Any]:
    admin_dsn, db_name, dsn, postmaster = await create_bench_database("crawlfleet_bench")
    children: list[procs.Child] = []
    try:
        # Our own site: no per-host politeness, or the claim would pace the fleet and not the work.
        flags = procs.UNPACED_HOST_FLAGS
        coordinator, address = await procs.start_coordinator(
            dsn, flags, log_dir=log_dir, cwd=REPO, timeout=START_TIMEOUT
        )
        children.append(coordinator)
        metrics_ports = [free_port() for _ in range(args.workers)]
        workers = [start_worker(args, address, i, log_dir, metrics_ports[i]) for i in range(args.workers)]
        children.extend(workers)
        db = await asyncpg.connect(dsn, timeout=START_TIMEOUT)
        channel = grpc.aio.insecure_channel(address)
        try:
            await wait_workers_seen(db, children, args.workers)
            say(f"coordinator pid {coordinator.pid} on {address}, workers {[w.pid for w in workers]}, db {db_name}")
            stub = job_queue_pb2_grpc.JobQueueStub(channel)
            await channel.channel_ready()
            if args.warmup:
                # One job per call, so that each idle worker's long-poll gets a share.
                # Distinct URLs: the queue dedupes live jobs by URL.
                # Pages and images under /warm/: the measured pages find no image cached by the warm-up.
                specs = job_specs(site, range(2 * args.workers), "http", "warm=http", warm=True)
                if args.browser_pages:
                    specs += job_specs(site, range(2 * args.workers), "browser", "warm=browser", warm=True)
                warm_ids = await enqueue(stub, specs, 1)
                await wait_done(db, children, len(warm_ids), args.timeout)
                spread = {r["worker_id"]: r["n"] for r in await db.fetch(WORKER_SPREAD_QUERY, warm_ids)}
                say(f"warm-up: {len(warm_ids)} jobs done, per worker {spread}")

            meter = procs.CpuMeter(cpu_groups(coordinator, workers), postmaster=postmaster, reaped_children=True)
            phase: dict[str, Any] = {
                "db": db,
                "children": children,
                "meter": meter,
                "log_dir": log_dir,
                "timeout": args.timeout,
                "profile_pid": workers[0].pid if args.profile else None,
                "metrics_urls": [f"http://127.0.0.1:{port}/metrics" for port in metrics_ports],
                "round_index": round_index,
            }
            http_specs = job_specs(site, range(args.pages), "http")
            _, http = await run_phase("http", lambda: enqueue(stub, http_specs, ENQUEUE_BATCH), **phase)
            browser: dict[str, Any] = {}
            if args.browser_pages:
                browser_specs = job_specs(site, range(args.pages, args.pages + args.browser_pages), "browser")
                _, browser = await run_phase("browser", lambda: enqueue(stub, browser_specs, ENQUEUE_BATCH), **phase)
            store = await db.fetchrow(STORE_QUERY)
            assert store is not None
        finally:
            await channel.close()
            await db.close()

        await procs.stop_all([*workers, coordinator], STOP_TIMEOUT)
        say("workers and coordinator stopped with status 0")
        return {
            "http_pages_per_s": http["pages_per_s"],
            "browser_pages_per_s": browser.get("pages_per_s"),
            "images_per_s": http["images_per_s"],
            "pages": args.pages,
            "browser_pages": args.browser_pages,
            "workers": args.workers,
            "slots": args.slots,
            "images_per_page": args.images_per_page,
            "image_pool": args.image_pool,
            "distinct_images": store["distinct_images"],
            "thumbnails": store["thumbnails"],
            "thumbnail_bytes": store["thumbnail_bytes"],
            "disk_kb_per_page": round(store["job_and_page_bytes"] / 1024 / max(store["stored_pages"], 1), 1),
            "browser_settle_timeout": args.browser_settle_timeout,
            "warmup": args.warmup,
            "worker_args": args.worker_arg,
            "site": site.size_summary(),
            "http": http,
            "browser": browser,
        }
    finally:
        procs.kill_all(children)
        await drop_bench_database(admin_dsn, db_name)


async def scrapy_round(args: argparse.Namespace, site: BenchSite, log_dir: Path, round_index: int) -> dict[str, Any]:
    """bench/scrapy_scrape.py on the HTTP phase's pages, with as many requests in flight as the fleet's slots."""
    out = Path(tempfile.mkdtemp(prefix="scrapy-scrape-", dir=log_dir))
    argv = [args.scrapy_python, str(REPO / "bench" / "scrapy_scrape.py"), "--base", site.base]
    argv += ["--pages", str(args.pages), "--concurrency", str(args.workers * args.slots), "--out", str(out)]
    host_before = procs.host_busy_seconds()
    log_path = log_dir / f"scrapy-{round_index}.log"
    result, cpu = await procs.run_scrapy(
        argv, log_path=log_path, out=out, timeout=args.timeout, pages=args.pages, verb="scraped"
    )
    host = procs.host_busy_seconds() - host_before
    result["cpu_s"] = {"scrapy": round(cpu, 2), "other": round(max(host - cpu, 0.0), 2)}
    result["cpu_ms_per_page"] = round(1000 * cpu / result["pages"], 2)
    say(
        f"scrapy: {result['pages']} pages in {result['span_s']}s ({result['pages_per_s']}/s),"
        f" {result['images']} images, {result['image_downloads']} downloads, CPU s {result['cpu_s']}"
    )
    shutil.rmtree(out / "images", ignore_errors=True)
    return result


def spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "median": round(statistics.median(values), 2), "max": max(values)}


def fleet_cpu_ms_per_page(round_figures: dict[str, Any]) -> float:
    """The fleet's own CPU for the HTTP phase: coordinator, workers, image pools and PostgreSQL."""
    cpu = round_figures["http"]["cpu_s"]
    own = sum(float(cpu[group]) for group in ("coordinator", "workers", "image_pool", "browser", "postgres"))
    return round(1000 * own / int(round_figures["pages"]), 2)


async def run(args: argparse.Namespace, site: BenchSite, log_dir: Path) -> dict[str, Any]:
    """Rounds of crawlfleet and Scrapy, alternating; the figures of each and their spread."""
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    for index in range(args.rounds):
        say(f"round {index + 1} of {args.rounds}: crawlfleet")
        ours.append(await crawlfleet_round(args, site, log_dir, index))
        if args.scrapy_python:
            say(f"round {index + 1} of {args.rounds}: scrapy")
            theirs.append(await scrapy_round(args, site, log_dir, index))
    http = spread([r["http_pages_per_s"] for r in ours])
    browser = spread([r["browser_pages_per_s"] for r in ours if r["browser_pages_per_s"] is not None])
    scrapy = spread([r["pages_per_s"] for r in theirs])
    assert http is not None
    last = ours[-1]
    return {
        "http_pages_per_s": http["median"],
        "browser_pages_per_s": browser["median"] if browser else None,
        "scrapy_pages_per_s": scrapy["median"] if scrapy else None,
        "ratio": round(http["median"] / scrapy["median"], 2) if scrapy else None,
        "crawlfleet": {
            "http_pages_per_s": http,
            "browser_pages_per_s": browser,
            "images_per_s": spread([r["images_per_s"] for r in ours]),
            "cpu_ms_per_page": spread([fleet_cpu_ms_per_page(r) for r in ours]),
        },
        "scrapy": {
            "pages_per_s": scrapy,
            "images_per_s": spread([r["images_per_s"] for r in theirs]),
            "cpu_ms_per_page": spread([r["cpu_ms_per_page"] for r in theirs]),
        },
        **{key: last[key] for key in ("pages", "browser_pages", "workers", "slots", "images_per_page", "image_pool")},
        **{key: last[key] for key in ("browser_settle_timeout", "warmup", "worker_args", "site")},
        "rounds": {"crawlfleet": ours, "scrapy": theirs},
    }


def main() -> None:
    args = parse_args()
    if min(args.pages, args.workers, args.slots, args.image_pool, args.rounds) < 1:
        sys.exit("--pages, --workers, --slots, --image-pool and --rounds must be at least 1")
    if min(args.images_per_page, args.browser_pages) < 0:
        sys.exit("--images-per-page and --browser-pages must not be negative")
    log_dir = Path(tempfile.mkdtemp(prefix="crawlfleet-bench-"))
    say(f"child logs in {log_dir}")
    started = time.perf_counter()
    site = BenchSite(
        pages=args.pages + args.browser_pages, images_per_page=args.images_per_page, pool_size=args.image_pool
    )
    site.generate()
    site.start()
    say(f"site {site.base} generated in {time.perf_counter() - started:.1f}s: {site.size_summary()}")
    try:
        result = asyncio.run(run(args, site, log_dir))
    finally:
        site.stop()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
