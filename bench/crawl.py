"""Crawl throughput: one coordinator and W worker processes crawl a generated local site of linked
pages from its home page, and optionally Scrapy crawls the same site in the same run.

    python bench/crawl.py --pages 5000 --workers 2 [--slots 8] [--images 3] [--rounds 3]
                          [--scrapy-python /tmp/scrapy-venv/bin/python]

The site (bench/crawl_site.py) has exactly --pages pages, all reachable from `/` within two links
(home, categories, products with 20 cross links each); with --images K each product page shows K
images drawn from a pool of --image-pool distinct generated JPEGs and PNGs. It is our own site, so
the coordinator runs without per-host limits (bench/procs.py, UNPACED_HOST_FLAGS): the workers'
slots bound the work in flight, as CONCURRENT_REQUESTS does Scrapy's. Each round starts a fresh database (DATABASE_URL's
server if set, else an embedded PostgreSQL in .crawlfleet/bench-pg), the coordinator and the
workers, warms the workers up with a few scrape jobs outside the crawl, then StartCrawl from `/`
with max_pages = --pages and waits for the crawl to finish. pages_per_s is the pages stored over
the crawl's span (its creation to its last job's end, on the database clock); images_per_s the
page images processed (downloaded, hashed, thumbnailed) in the same span.

With --scrapy-python, each round then runs bench/scrapy_crawl.py under that Python (a virtualenv
with Scrapy and Pillow; Scrapy is not a crawlfleet dependency) on the same site with the same
concurrency (CONCURRENT_REQUESTS = W x slots), ImagesPipeline with two thumbnail sizes when
--images is set; rounds alternate crawlfleet and Scrapy. To compare:

    python3 -m venv /tmp/scrapy-venv && /tmp/scrapy-venv/bin/pip install scrapy pillow
    .venv/bin/python bench/crawl.py --pages 5000 --rounds 3 --scrapy-python /tmp/scrapy-venv/bin/python
    .venv/bin/python bench/crawl.py --pages 5000 --images 3 --rounds 3 --scrapy-python /tmp/scrapy-venv/bin/python
    /tmp/scrapy-venv/bin/scrapy bench    # Scrapy's own reference figure on this machine

Progress goes to stdout; the last line is one JSON object: per tool the min, median and max over
the rounds, `ratio` (crawlfleet median / Scrapy median) and every round's figures. cpu_s is CPU
seconds per process group over the crawl (`other` is the rest of the host: the noise the figures
suffered); Scrapy's is its process's. cpu_ms_per_page is CPU per page stored: for crawlfleet the
coordinator's, the workers' (image pools included) and PostgreSQL's, for Scrapy its process's;
neither counts the site's server. On a shared host it is the steadier figure: pages/s also
depends on the CPU share each tool gets, and crawlfleet's several processes get more of it than
Scrapy's one when the host is busy.
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
import statistics
import tempfile
import time
from typing import Any

import asyncpg
import grpc
from google.protobuf.duration_pb2 import Duration

from bench import procs
from bench.crawl_site import CrawlSite
from bench.queue import create_bench_database, drop_bench_database, say, wait_all_succeeded
from crawlfleet.v1 import crawls_pb2, crawls_pb2_grpc, job_queue_pb2_grpc, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
CALL_TIMEOUT = 60.0
POLL_SECONDS = 0.1
PROGRESS_SECONDS = 5.0
# One retry, soon: a bench run should finish, and report that it needed retries.
RETRY_POLICY = jobs_pb2.RetryPolicy(
    maximum_attempts=2, initial_interval=Duration(nanos=100_000_000), maximum_interval=Duration(nanos=100_000_000)
)
CRAWL_QUERY = """
SELECT count(*) FILTER (WHERE j.state = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE j.state IN ('dead', 'cancelled', 'skipped')) AS failed,
       count(*) FILTER (WHERE j.attempt > 1) AS retried,
       (SELECT count(*) FROM pages AS p JOIN jobs AS pj ON pj.id = p.job_id WHERE pj.crawl_id = $1) AS pages,
       extract(epoch FROM max(j.finished_at) - (SELECT created_at FROM crawls WHERE id = $1)) AS span,
       max(j.depth) AS max_depth
FROM jobs AS j WHERE j.crawl_id = $1
"""
IMAGES_QUERY = """
SELECT count(*) FILTER (WHERE pi.image_sha256 IS NOT NULL) AS processed,
       count(*) FILTER (WHERE pi.image_sha256 IS NULL) AS failed
FROM page_images AS pi JOIN jobs AS j ON j.id = pi.job_id
WHERE j.crawl_id = $1
"""
FAILURES_QUERY = "SELECT id, target_url, last_error FROM jobs WHERE crawl_id = $1 AND state <> 'succeeded' LIMIT 5"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=5000, help="pages of the site, and the crawl's max_pages")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (W)")
    parser.add_argument("--slots", type=int, default=8, help="slots per worker")
    parser.add_argument("--images", type=int, default=0, help="<img> per product page (K)")
    parser.add_argument("--image-pool", type=int, default=50, help="distinct images the pages draw from")
    parser.add_argument("--rounds", type=int, default=1, help="crawls of each tool, alternating")
    parser.add_argument("--scrapy-python", help="a Python with Scrapy: also crawl the site with Scrapy")
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=True, help="warm the workers up")
    parser.add_argument("--timeout", type=float, default=900.0, help="bound on each crawl, seconds")
    parser.add_argument("--worker-log-level", default="WARNING", help="the workers' --log-level")
    parser.add_argument("--worker-arg", action="append", default=[], help="extra worker flag, e.g. =--max-images=1")
    parser.add_argument("--coordinator-arg", action="append", default=[], help="extra coordinator flag")
    return parser.parse_args()


def start_worker(args: argparse.Namespace, address: str, index: int, log_dir: Path) -> procs.Child:
    argv = ["-m", "crawlfleet.worker", "--coordinator", address, "--allow-loopback", "--kinds", "scrape"]
    argv += ["--slots", str(args.slots), "--worker-id", f"bench-{os.getpid()}-{index}"]
    argv += ["--log-level", args.worker_log_level]
    return procs.start_python(f"worker-{index}", [*argv, *args.worker_arg], log_dir=log_dir, cwd=REPO)


async def wait_workers_seen(db: asyncpg.Connection, children: list[procs.Child], count: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while await db.fetchval("SELECT count(*) FROM workers") < count:
        procs.check_running(children)
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} workers reached the coordinator within {START_TIMEOUT}s")
        await asyncio.sleep(POLL_SECONDS)


async def warm_up(
    db: asyncpg.Connection,
    children: list[procs.Child],
    channel: grpc.aio.Channel,
    site: CrawlSite,
    args: argparse.Namespace,
) -> None:
    """A few product pages (their images too) as plain scrape jobs, one per call so that each idle
    worker's long-poll gets a share: image pools and connections are up before the crawl."""
    stub = job_queue_pb2_grpc.JobQueueStub(channel)
    products = [path for path in site.paths() if path.startswith("/p/")]
    for path in products[: 2 * args.workers]:
        spec = jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url=f"{site.base}{path}?warm"), retry_policy=RETRY_POLICY)
        await stub.Enqueue(pb.EnqueueRequest(jobs=[spec]), timeout=CALL_TIMEOUT)
    await wait_all_succeeded(db, children, 2 * args.workers, args.timeout)


async def wait_crawl(db: asyncpg.Connection, children: list[procs.Child], crawl_id: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + PROGRESS_SECONDS
    while await db.fetchval("SELECT state::text FROM crawls WHERE id = $1", crawl_id) == "running":
        procs.check_running(children)
        if time.monotonic() > deadline:
            raise TimeoutError(f"crawl {crawl_id} still running after {timeout}s")
        if time.monotonic() > next_report:
            done = await db.fetchval("SELECT count(*) FROM jobs WHERE crawl_id = $1 AND state = 'succeeded'", crawl_id)
            say(f"  {done} pages stored")
            next_report += PROGRESS_SECONDS
        await asyncio.sleep(POLL_SECONDS)


def cpu_groups(coordinator: procs.Child, workers: list[procs.Child]) -> dict[str, list[int]]:
    return {
        "coordinator": [coordinator.pid],
        "workers": [w.pid for w in workers],
        "image_pool": [pid for pid, _ in procs.descendants([w.pid for w in workers])],
        "bench": [os.getpid()],
    }


async def crawlfleet_round(args: argparse.Namespace, site: CrawlSite, log_dir: Path) -> dict[str, Any]:
    admin_dsn, db_name, dsn, postmaster = await create_bench_database("crawlfleet_crawl_bench")
    children: list[procs.Child] = []
    try:
        # Our own site: no per-host politeness, or the claim would pace the fleet and not the work.
        flags = procs.UNPACED_HOST_FLAGS
        coordinator, address = await procs.start_coordinator(
            dsn, [*flags, *args.coordinator_arg], log_dir=log_dir, cwd=REPO, timeout=START_TIMEOUT
        )
        children.append(coordinator)
        workers = [start_worker(args, address, i, log_dir) for i in range(args.workers)]
        children.extend(workers)
        db = await asyncpg.connect(dsn, timeout=START_TIMEOUT)
        channel = grpc.aio.insecure_channel(address)
        try:
            await wait_workers_seen(db, children, args.workers)
            await channel.channel_ready()
            if args.warmup:
                await warm_up(db, children, channel, site, args)
            meter = procs.CpuMeter(cpu_groups(coordinator, workers), postmaster=postmaster, reaped_children=True)
            hits_before = site.hits
            meter.start()
            spec = crawls_pb2.CrawlSpec(
                seeds=[f"{site.base}/"],
                max_pages=args.pages,
                max_depth=10,
                page=jobs_pb2.ScrapeSpec(render=jobs_pb2.RENDER_MODE_HTTP),
                retry_policy=RETRY_POLICY,
            )
            crawls = crawls_pb2_grpc.CrawlsStub(channel)
            started = await crawls.StartCrawl(crawls_pb2.StartCrawlRequest(spec=spec), timeout=CALL_TIMEOUT)
            await wait_crawl(db, children, started.crawl_id, args.timeout)
            cpu = meter.read()
            requests = site.hits - hits_before
            row = await db.fetchrow(CRAWL_QUERY, started.crawl_id)
            images = await db.fetchrow(IMAGES_QUERY, started.crawl_id)
            assert row is not None and images is not None
            if row["pages"] != args.pages or row["failed"]:
                failures = [dict(r) for r in await db.fetch(FAILURES_QUERY, started.crawl_id)]
                raise RuntimeError(f"crawl stored {row['pages']} of {args.pages} pages; failed: {failures}")
        finally:
            await channel.close()
            await db.close()
        await procs.stop_all([*workers, coordinator], STOP_TIMEOUT)
    finally:
        procs.kill_all(children)
        await drop_bench_database(admin_dsn, db_name)
    span = float(row["span"])
    # The fleet's own CPU: not the site's server (`bench`) nor the rest of the host.
    fleet_cpu = sum(cpu[group] for group in ("coordinator", "workers", "image_pool", "postgres"))
    return {
        "pages": row["pages"],
        "span_s": round(span, 3),
        "pages_per_s": round(row["pages"] / span, 2),
        "images": images["processed"],
        "images_failed": images["failed"],
        "images_per_s": round(images["processed"] / span, 2),
        "requests": requests,
        "retried": row["retried"],
        "max_depth": row["max_depth"],
        "cpu_s": cpu,
        "cpu_ms_per_page": round(1000 * fleet_cpu / row["pages"], 2),
    }


async def scrapy_round(args: argparse.Namespace, site: CrawlSite, log_dir: Path, index: int) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="scrapy-crawl-", dir=log_dir))
    argv = [args.scrapy_python, str(REPO / "bench" / "scrapy_crawl.py"), "--start", f"{site.base}/"]
    argv += ["--concurrency", str(args.workers * args.slots), "--out", str(out)]
    argv += ["--images"] if args.images else []
    hits_before = site.hits
    bench_before = procs.cpu_seconds(os.getpid())
    log_path = log_dir / f"scrapy-{index}.log"
    result, cpu = await procs.run_scrapy(
        argv, log_path=log_path, out=out, timeout=args.timeout, pages=args.pages, verb="crawled"
    )
    bench_cpu = procs.cpu_seconds(os.getpid()) - bench_before
    result["requests"] = site.hits - hits_before
    result["cpu_s"] = {"scrapy": round(cpu, 2), "bench": round(bench_cpu, 2)}
    result["cpu_ms_per_page"] = round(1000 * cpu / result["pages"], 2)
    shutil.rmtree(out / "images", ignore_errors=True)
    return result


def spread(rounds: list[dict[str, Any]], key: str) -> dict[str, float] | None:
    values = [r[key] for r in rounds if r.get(key) is not None]
    if not values:
        return None
    return {"min": min(values), "median": round(statistics.median(values), 2), "max": max(values)}


async def run(args: argparse.Namespace, site: CrawlSite, log_dir: Path) -> dict[str, Any]:
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    for index in range(args.rounds):
        figures = await crawlfleet_round(args, site, log_dir)
        ours.append(figures)
        say(
            f"round {index + 1} crawlfleet: {figures['pages']} pages in {figures['span_s']}s"
            f" ({figures['pages_per_s']}/s), {figures['images']} images ({figures['images_per_s']}/s),"
            f" {figures['requests']} requests, CPU s {figures['cpu_s']} ({figures['cpu_ms_per_page']} ms/page)"
        )
        if args.scrapy_python:
            figures = await scrapy_round(args, site, log_dir, index)
            theirs.append(figures)
            say(
                f"round {index + 1} scrapy: {figures['pages']} pages in {figures['span_s']}s"
                f" ({figures['pages_per_s']}/s), {figures['images']} images ({figures['images_per_s']}/s),"
                f" {figures['requests']} requests, CPU s {figures['cpu_s']} ({figures['cpu_ms_per_page']} ms/page)"
            )
    pages = spread(ours, "pages_per_s")
    scrapy_pages = spread(theirs, "pages_per_s")
    assert pages is not None
    return {
        "pages_per_s": pages["median"],
        "images_per_s": (spread(ours, "images_per_s") or {}).get("median"),
        "scrapy_pages_per_s": scrapy_pages["median"] if scrapy_pages else None,
        "ratio": round(pages["median"] / scrapy_pages["median"], 2) if scrapy_pages else None,
        "crawlfleet": {key: spread(ours, key) for key in ("pages_per_s", "images_per_s", "cpu_ms_per_page")},
        "scrapy": {key: spread(theirs, key) for key in ("pages_per_s", "images_per_s", "cpu_ms_per_page")},
        "pages": args.pages,
        "workers": args.workers,
        "slots": args.slots,
        "images_per_page": args.images,
        "image_pool": args.image_pool,
        "site": site.size_summary(),
        "rounds": {"crawlfleet": ours, "scrapy": theirs},
    }


def main() -> None:
    args = parse_args()
    if min(args.pages - 2, args.workers, args.slots, args.image_pool, args.rounds) < 1:
        sys.exit("--pages must be at least 3; --workers, --slots, --image-pool and --rounds at least 1")
    if args.images < 0:
        sys.exit("--images must not be negative")
    log_dir = Path(tempfile.mkdtemp(prefix="crawlfleet-bench-"))
    say(f"child logs in {log_dir}")
    started = time.perf_counter()
    site = CrawlSite(pages=args.pages, images_per_page=args.images, pool_size=args.image_pool)
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
