"""Queue throughput and latency: one coordinator and W worker processes over gRPC on loopback.

    python bench/queue.py --jobs 20000 --workers 2 [--slots 200] [--batch 1000]
    python bench/queue.py --jobs 20000 --hosts 10000 [--throttled-backlog 1000000] --coordinator-arg=--no-obey-robots

Uses DATABASE_URL's server if set, else an embedded PostgreSQL in .crawlfleet/bench-pg, and a fresh
database for the run (dropped at the end). Phases, each timed from the database clock where it can be:

1. enqueue_per_s: N noop jobs in Enqueue calls of --batch jobs, before any worker runs, timed
   from the first call to the last answer (one Enqueue call after another, as the client
   library's enqueue_many makes them). One Enqueue call of one job goes first, untimed: the first
   statement into the run's brand-new database on a fresh pool connection pays one-off costs
   (statement preparation, the relations' first pages and catalog caches) that were a good part
   of twenty calls and that a running coordinator has long paid; it is reported on its own,
   enqueue_first_call_ms, and its job is drained with the others.
2. jobs_per_s: W workers drain them; N / (max(finished_at) - min(leased_at)).
3. latency_p50_ms / latency_p99_ms: with the workers idle in their long-poll, --latency-jobs single
   Enqueue calls paced --latency-interval-ms apart; leased_at - created_at per job.

With --hosts K the jobs of phases 2 and 3 are host-bound: noop jobs with the URL
http://h<n mod K>.bench.test/<n>, so each claim leases them within their hosts' limits (the
coordinator's politeness flags: its defaults unless --coordinator-arg says otherwise). Noop jobs
fetch no robots.txt: pass --coordinator-arg=--no-obey-robots, or each host waits a lease length
for a robots.txt fetch that never reports.

With --throttled-backlog M, M jobs on one more host, throttled.bench.test, whose policy (a
host_policies row written once the coordinator is up) allows one lease in flight and one lease
start an hour, are enqueued first (in Enqueue calls of --backlog-batch jobs, two at a time) and the
jobs table is vacuumed and analyzed, as a backlog that waited a while would be. The measured jobs
are then leased past a host with M queued jobs. Completion checks skip that host's jobs.

With --depth Q,F the table is deep when the drain starts: right after phase 1, Q queued hostless
noop jobs and F finished ones (a week-long crawl's history: succeeded with pages, dead, with
their attempts; see bench/depth.py) are written in set-based SQL, then VACUUM ANALYZE runs. The
backlog comes after the N jobs in lease order (its run_at is later), so the N measured jobs are
the head of a queue N + Q deep: the drain leases them out of it, and phase 2 ends when they
have succeeded (the workers go on into the backlog until they are stopped). Phase 3 is skipped
when Q > 0 (its jobs would wait behind the backlog). Compare `--depth 10000,0` with
`--depth 1000000,0`, and `--depth 0,0` with `--depth 0,10000000`.

With --watch, a WatchJobs stream watches the N jobs of phase 2 while they drain (the coordinator's
finish notifies are on meanwhile); watch_reported counts the jobs it reported, watch_messages
the messages it took.

Progress goes to stdout; the last line is one JSON object with the figures. Child logs stay in a
temporary directory, printed at the start. cpu_s_* are CPU seconds per process group over a phase
(from /proc): the drain's `workers` figure includes their start-up (imports, ~0.3 s each), and
`other` is the rest of the host, i.e. the noise the figures suffered.
"""

# ruff: noqa: E402 (sys.path is fixed before the imports, see below)

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/queue.py` puts bench/ first on sys.path, where this file would shadow the stdlib
# `queue` that asyncio imports: swap that entry for the repository root before importing anything.
REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [str(REPO) if Path(p or ".").resolve() == REPO / "bench" else p for p in sys.path]

import argparse
import asyncio
import json
import math
import os
import tempfile
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc

from bench import depth, procs
from crawlfleet.coordinator.storage import database
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import job_queue_pb2_grpc, jobs_pb2

EMBEDDED_DATA_DIR = REPO / ".crawlfleet" / "bench-pg"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
CALL_TIMEOUT = 60.0
POLL_SECONDS = 0.05
# The job of the untimed Enqueue call before phase 1.
WARM_UP_JOBS = 1
PROGRESS_SECONDS = 2.0
# The run's database holds only the run's jobs and the throttled backlog ($1, the backlog's host),
# so "done" is "none live but the backlog's, none failed". Each test stops at its first hit in a
# partial index, walked in its order (so whatever the statistics say, never a scan of the
# backlog): hostless queued jobs (jobs_available), hosts' queues on either side of the backlog's
# host (jobs_host_queue), leases (at most the fleet's slots).
THROTTLED_HOST = "throttled.bench.test"
POLL_QUERY = """
SELECT (SELECT id FROM jobs WHERE state = 'queued' AND host IS NULL ORDER BY priority DESC, run_at, id LIMIT 1)
           IS NOT NULL
       OR (SELECT host FROM jobs WHERE state = 'queued' AND host IS NOT NULL AND host < $1 ORDER BY host LIMIT 1)
           IS NOT NULL
       OR (SELECT host FROM jobs WHERE state = 'queued' AND host IS NOT NULL AND host > $1 ORDER BY host LIMIT 1)
           IS NOT NULL
       OR EXISTS (SELECT 1 FROM jobs WHERE state = 'leased' AND host IS DISTINCT FROM $1) AS live,
       EXISTS (SELECT 1 FROM jobs WHERE state IN ('dead', 'cancelled') AND finished_at IS NOT NULL) AS failed
"""
# The queued jobs but the backlog's, from the same indexes.
QUEUED_QUERY = """
SELECT (SELECT count(*) FROM jobs WHERE state = 'queued' AND host IS NULL)
       + (SELECT count(*) FROM jobs WHERE state = 'queued' AND host IS NOT NULL AND host < $1)
       + (SELECT count(*) FROM jobs WHERE state = 'queued' AND host IS NOT NULL AND host > $1)
"""
# At depth the table holds other jobs (a backlog, dead ones of the history): "done" is about the
# measured ids ($1..$2) only. Not leased, not queued on a host, and the first job in hostless
# lease order none of them nor the untimed warm-up job before them (all are ahead of the
# backlog, whose ids come after); and none dead.
RANGE_POLL_QUERY = """
SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'leased' AND id BETWEEN $1 AND $2)
       OR coalesce((SELECT id <= $2 FROM jobs WHERE state = 'queued' AND host IS NULL
                    ORDER BY priority DESC, run_at, id LIMIT 1), false)
       OR EXISTS (SELECT 1 FROM jobs WHERE state = 'queued' AND host IS NOT NULL AND id BETWEEN $1 AND $2) AS live,
       EXISTS (SELECT 1 FROM jobs WHERE state = 'dead' AND id BETWEEN $1 AND $2) AS failed
"""
# One lease in flight and one lease start an hour: the backlog's host is served once in a run.
THROTTLED_POLICY = """
INSERT INTO host_policies (pattern, max_concurrency, delay_ms, note, updated_at)
VALUES ($1, 1, 3600000, 'bench: a throttled backlog', now())
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs of the throughput phases (N)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (W)")
    parser.add_argument("--slots", type=int, default=200, help="slots per worker")
    parser.add_argument("--batch", type=int, default=1000, help="jobs per Enqueue call in phase 1")
    parser.add_argument("--latency-jobs", type=int, default=500, help="single enqueues of phase 3 (M)")
    parser.add_argument("--latency-interval-ms", type=float, default=10.0, help="pace of phase 3")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound on each phase, seconds")
    parser.add_argument("--synchronous-commit", choices=["on", "off"], help="set on the run's database")
    parser.add_argument("--worker-log-level", default="INFO", help="the workers' --log-level")
    parser.add_argument("--worker-arg", action="append", default=[], help="extra worker flag, e.g. =--lease-wait=5")
    parser.add_argument("--coordinator-arg", action="append", default=[], help="extra coordinator flag")
    parser.add_argument("--watch", action="store_true", help="watch the drained jobs with WatchJobs")
    parser.add_argument("--hosts", type=int, default=0, help="spread the jobs over K hosts (0: hostless jobs)")
    parser.add_argument("--throttled-backlog", type=int, default=0, help="jobs queued first on one throttled host (M)")
    parser.add_argument("--backlog-batch", type=int, default=10_000, help="jobs per Enqueue call of the backlog")
    parser.add_argument(
        "--depth", type=depth.parse_depth, default=(0, 0), metavar="Q,F", help="queued and finished rows (see above)"
    )
    return parser.parse_args()


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def with_database(dsn: str, name: str) -> str:
    """The same server, another database (as tests/pg.py does)."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def database_of(dsn: str) -> str:
    """The database a DSN names (with_database's inverse; a socket directory in the query may hold "/")."""
    return urlsplit(dsn).path.lstrip("/")


async def admin_execute(admin_dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(admin_dsn, timeout=START_TIMEOUT)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create_bench_database(prefix: str) -> tuple[str, str, str, int | None]:
    """A fresh database on DATABASE_URL's server, else on the embedded one.

    Returns (admin DSN, database name, its DSN, the embedded postmaster's pid); the pid is None
    on a server of DATABASE_URL, where CPU is counted over every postgres process of the host.
    """
    admin_dsn = os.environ.get("DATABASE_URL", "")
    postmaster: int | None = None
    if not admin_dsn:
        admin_dsn = await asyncio.to_thread(database.start_embedded, EMBEDDED_DATA_DIR)
        postmaster = int((EMBEDDED_DATA_DIR / "postmaster.pid").read_text().split()[0])
    db_name = f"{prefix}_{os.getpid()}"
    await admin_execute(admin_dsn, f"CREATE DATABASE {db_name}")
    return admin_dsn, db_name, with_database(admin_dsn, db_name), postmaster


async def drop_bench_database(admin_dsn: str, db_name: str) -> None:
    await admin_execute(admin_dsn, f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


async def wait_all_succeeded(db: asyncpg.Connection, children: list[procs.Child], total: int, timeout: float) -> None:
    """Poll until no job is queued or leased and all `total` jobs of the run's database succeeded
    (the throttled backlog's jobs aside).

    A poll is a few index probes (the partial indexes of queued, leased and finished jobs) that
    stop at the first hit, so polling costs the database next to nothing at any N; only the
    progress line counts rows, every few seconds.
    """
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + PROGRESS_SECONDS
    while True:
        row = await db.fetchrow(POLL_QUERY, THROTTLED_HOST)
        assert row is not None
        if row["failed"]:
            raise RuntimeError("a job ended dead or cancelled")
        if not row["live"]:
            break
        procs.check_running(children)
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs still queued or leased after {timeout}s")
        if time.monotonic() > next_report:
            queued = await db.fetchval(QUEUED_QUERY, THROTTLED_HOST)
            say(f"  {queued} jobs still queued")
            next_report += PROGRESS_SECONDS
        await asyncio.sleep(POLL_SECONDS)
    succeeded = await db.fetchval(
        "SELECT count(*) FROM jobs WHERE state = 'succeeded' AND host IS DISTINCT FROM $1", THROTTLED_HOST
    )
    if succeeded != total:
        raise RuntimeError(f"{succeeded} jobs succeeded, expected {total}")


async def wait_ids_succeeded(
    db: asyncpg.Connection, children: list[procs.Child], ids: list[int], timeout: float
) -> None:
    """Poll until the jobs `ids` (one block of ids) all succeeded, whatever else the table holds."""
    lo, hi = min(ids), max(ids)
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + PROGRESS_SECONDS
    while True:
        row = await db.fetchrow(RANGE_POLL_QUERY, lo, hi)
        assert row is not None
        if row["failed"]:
            raise RuntimeError("a measured job ended dead")
        if not row["live"]:
            break
        procs.check_running(children)
        if time.monotonic() > deadline:
            raise TimeoutError(f"measured jobs still queued or leased after {timeout}s")
        if time.monotonic() > next_report:
            done = await db.fetchval(
                "SELECT count(*) FROM jobs WHERE id BETWEEN $1 AND $2 AND state = 'succeeded'", lo, hi
            )
            say(f"  {done} of {len(ids)} measured jobs succeeded")
            next_report += PROGRESS_SECONDS
        await asyncio.sleep(POLL_SECONDS)
    succeeded = await db.fetchval("SELECT count(*) FROM jobs WHERE id = ANY($1::bigint[]) AND state = 'succeeded'", ids)
    if succeeded != len(ids):
        raise RuntimeError(f"{succeeded} measured jobs succeeded, expected {len(ids)}")


async def watch_jobs(stub: job_queue_pb2_grpc.JobQueueAsyncStub, ids: list[int]) -> tuple[int, int]:
    """Follow a WatchJobs stream of ids to its end; (jobs reported, messages)."""
    reported = messages = 0
    async for response in stub.WatchJobs(pb.WatchJobsRequest(job_ids=ids)):
        reported += len(response.jobs)
        messages += 1
    return reported, messages


HOSTLESS_SPEC = jobs_pb2.JobSpec(noop=jobs_pb2.NoopSpec())


def job_spec(hosts: int, path: str, n: int) -> jobs_pb2.JobSpec:
    """The n-th job of a phase: hostless, or on host n mod `hosts` at a URL of its own."""
    if not hosts:
        return HOSTLESS_SPEC
    return jobs_pb2.JobSpec(noop=jobs_pb2.NoopSpec(url=f"http://h{n % hosts}.bench.test/{path}{n}"))


async def enqueue_phase(
    stub: job_queue_pb2_grpc.JobQueueAsyncStub, args: argparse.Namespace
) -> tuple[list[int], float]:
    """Enqueue N noop jobs in batches; returns their ids and the wall time."""
    ids: list[int] = []
    started = time.perf_counter()
    for offset in range(0, args.jobs, args.batch):
        specs = [job_spec(args.hosts, "", n) for n in range(offset, min(offset + args.batch, args.jobs))]
        response = await stub.Enqueue(pb.EnqueueRequest(jobs=specs), timeout=CALL_TIMEOUT)
        ids.extend(job.id for job in response.jobs)
    return ids, time.perf_counter() - started


async def warm_up(stub: job_queue_pb2_grpc.JobQueueAsyncStub, args: argparse.Namespace) -> float:
    """One Enqueue call of one job before phase 1 (see the docstring); its wall time, ms."""
    started = time.perf_counter()
    await stub.Enqueue(pb.EnqueueRequest(jobs=[job_spec(args.hosts, "warm-up-", 0)]), timeout=CALL_TIMEOUT)
    return (time.perf_counter() - started) * 1000


async def enqueue_backlog(stub: job_queue_pb2_grpc.JobQueueAsyncStub, args: argparse.Namespace) -> float:
    """Enqueue the throttled backlog, two Enqueue calls in flight; returns the wall time."""
    next_offset = 0

    async def sender() -> None:
        nonlocal next_offset
        while next_offset < args.throttled_backlog:
            offset, next_offset = next_offset, next_offset + args.backlog_batch
            urls = range(offset, min(offset + args.backlog_batch, args.throttled_backlog))
            specs = [jobs_pb2.JobSpec(noop=jobs_pb2.NoopSpec(url=f"http://{THROTTLED_HOST}/{n}")) for n in urls]
            await stub.Enqueue(pb.EnqueueRequest(jobs=specs), timeout=CALL_TIMEOUT)

    started = time.perf_counter()
    await asyncio.gather(sender(), sender())
    return time.perf_counter() - started


async def latency_phase(stub: job_queue_pb2_grpc.JobQueueAsyncStub, args: argparse.Namespace) -> list[int]:
    """Single enqueues on a fixed schedule, so each lands on idle long-polling workers."""
    interval = args.latency_interval_ms / 1000
    ids: list[int] = []
    start = time.monotonic()
    for k in range(args.latency_jobs):
        delay = start + k * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing, not waiting on a condition
        request = pb.EnqueueRequest(jobs=[job_spec(args.hosts, "latency-", k)])
        response = await stub.Enqueue(request, timeout=CALL_TIMEOUT)
        ids.append(response.jobs[0].id)
    return ids


async def watch_registered(db: asyncpg.Connection) -> None:
    """Wait until the coordinator registered its watch, so the whole drain runs with notifies on."""
    deadline = time.monotonic() + START_TIMEOUT
    while not await db.fetchval("SELECT EXISTS (SELECT 1 FROM job_watchers)"):
        if time.monotonic() > deadline:
            raise TimeoutError("the coordinator did not register the watch")
        await asyncio.sleep(POLL_SECONDS)


async def load_backlog(
    db: asyncpg.Connection, stub: job_queue_pb2_grpc.JobQueueAsyncStub, args: argparse.Namespace
) -> tuple[float, float]:
    """The throttled host's policy, then its backlog, then VACUUM ANALYZE of jobs; (enqueue s, vacuum s)."""
    await db.execute(THROTTLED_POLICY, THROTTLED_HOST)
    backlog_s = await enqueue_backlog(stub, args)
    say(
        f"backlog: enqueued {args.throttled_backlog} jobs on {THROTTLED_HOST} in {backlog_s:.1f}s"
        f" ({args.throttled_backlog / backlog_s:,.0f}/s)"
    )
    started = time.perf_counter()
    await db.execute("VACUUM (ANALYZE) jobs", timeout=args.timeout)
    vacuum_s = time.perf_counter() - started
    say(f"backlog: VACUUM (ANALYZE) in {vacuum_s:.1f}s")
    return backlog_s, vacuum_s


def start_worker(args: argparse.Namespace, address: str, index: int, log_dir: Path) -> procs.Child:
    argv = ["-m", "crawlfleet.worker", "--coordinator", address, "--slots", str(args.slots), "--kinds", "noop"]
    argv += ["--worker-id", f"bench-{os.getpid()}-{index}", "--log-level", args.worker_log_level, *args.worker_arg]
    return procs.start_python(f"worker-{index}", argv, log_dir=log_dir, cwd=REPO)


async def run(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    admin_dsn, db_name, dsn, postmaster = await create_bench_database("crawlfleet_bench")
    children: list[procs.Child] = []
    try:
        if args.synchronous_commit:
            await admin_execute(
                admin_dsn, f"ALTER DATABASE {db_name} SET synchronous_commit = {args.synchronous_commit}"
            )
        coordinator, address = await procs.start_coordinator(
            dsn, args.coordinator_arg, log_dir=log_dir, cwd=REPO, timeout=START_TIMEOUT
        )
        children.append(coordinator)
        say(f"coordinator pid {coordinator.pid} on {address}, database {db_name}")

        db = await asyncpg.connect(dsn, timeout=START_TIMEOUT)
        channel = grpc.aio.insecure_channel(address)
        try:
            stub = job_queue_pb2_grpc.JobQueueStub(channel)
            await channel.channel_ready()  # connection set-up is not part of the enqueue time
            backlog_s = vacuum_s = 0.0
            if args.throttled_backlog:
                backlog_s, vacuum_s = await load_backlog(db, stub, args)

            first_call_ms = await warm_up(stub, args)
            meter = procs.CpuMeter({"coordinator": [coordinator.pid], "bench": [os.getpid()]}, postmaster=postmaster)
            meter.start()
            ids, enqueue_s = await enqueue_phase(stub, args)
            cpu_enqueue = meter.read()
            say(
                f"phase 1: enqueued {len(ids)} jobs in {enqueue_s:.2f}s ({len(ids) / enqueue_s:,.0f}/s),"
                f" after a first call of one job in {first_call_ms:.1f} ms"
            )
            depth_queued, depth_finished = args.depth
            at_depth = depth_queued + depth_finished > 0
            filled = None
            if at_depth:
                say(f"depth: writing {depth_queued:,} queued and {depth_finished:,} finished jobs")
                filled = await depth.fill(db, queued=depth_queued, finished=depth_finished, say=say)
                say(f"depth: written in {filled.fill_s:.1f}s, VACUUM ANALYZE {filled.vacuum_s:.1f}s")

            watch = asyncio.ensure_future(watch_jobs(stub, ids)) if args.watch else None
            if watch is not None:
                await watch_registered(db)
            workers = [start_worker(args, address, i, log_dir) for i in range(args.workers)]
            children.extend(workers)
            meter = procs.CpuMeter(
                {"coordinator": [coordinator.pid], "workers": [w.pid for w in workers], "bench": [os.getpid()]},
                postmaster=postmaster,
            )
            meter.start()
            drain_started = time.perf_counter()
            say(f"phase 2: started {args.workers} workers x {args.slots} slots (pids {[w.pid for w in workers]})")
            if at_depth:
                await wait_ids_succeeded(db, children, ids, args.timeout)
            else:
                await wait_all_succeeded(db, children, len(ids) + WARM_UP_JOBS, args.timeout)
            drain_wall_s = time.perf_counter() - drain_started
            watch_reported, watch_messages = await asyncio.wait_for(watch, args.timeout) if watch else (0, 0)
            cpu_drain = meter.read()
            row = await db.fetchrow(
                "SELECT extract(epoch FROM max(finished_at) - min(leased_at)) AS span,"
                " count(*) FILTER (WHERE attempt > 1) AS retried,"
                # A claim stamps its leases with its statement time, a complete its jobs with its
                # own: distinct stamps count the claims and completes that served the drain.
                " count(DISTINCT leased_at) AS claims, count(DISTINCT finished_at) AS completes,"
                " extract(epoch FROM (SELECT max(first_seen_at) FROM workers) - min(leased_at)) AS workers_ready"
                " FROM jobs WHERE id BETWEEN $1 AND $2",
                min(ids),
                max(ids),
            )
            assert row is not None
            span = float(row["span"])
            say(
                f"phase 2: {len(ids)} jobs leased->succeeded in {span:.2f}s ({len(ids) / span:,.0f}/s),"
                f" last worker's first lease {float(row['workers_ready']):+.2f}s after the first, CPU s {cpu_drain}"
            )

            latency: dict[str, Any] = dict.fromkeys(("p50", "p99", "max"), None)
            latencies: list[float] = []
            if depth_queued:
                say("phase 3: skipped (its jobs would wait behind the backlog)")
            else:
                latency_ids = await latency_phase(stub, args)
                if at_depth:
                    await wait_ids_succeeded(db, children, latency_ids, args.timeout)
                else:
                    await wait_all_succeeded(db, children, len(ids) + WARM_UP_JOBS + len(latency_ids), args.timeout)
                rows = await db.fetch(
                    "SELECT extract(epoch FROM leased_at - created_at) * 1000 AS ms FROM jobs"
                    " WHERE id = ANY($1::bigint[])",
                    latency_ids,
                )
                latencies = sorted(float(r["ms"]) for r in rows)
                latency = {
                    "p50": round(percentile(latencies, 0.50), 3),
                    "p99": round(percentile(latencies, 0.99), 3),
                    "max": round(latencies[-1], 3),
                }
                say(
                    f"phase 3: enqueue->lease over {len(latencies)} jobs: p50 {latency['p50']:.2f} ms,"
                    f" p99 {latency['p99']:.2f} ms, max {latency['max']:.2f} ms"
                )
        finally:
            await channel.close()
            await db.close()

        await procs.stop_all([*workers, coordinator], STOP_TIMEOUT)
        say("workers and coordinator stopped with status 0")
        return {
            "jobs": args.jobs,
            "workers": args.workers,
            "slots": args.slots,
            "batch": args.batch,
            "hosts": args.hosts,
            "throttled_backlog": args.throttled_backlog,
            "jobs_per_s": round(len(ids) / span, 1),
            "enqueue_per_s": round(len(ids) / enqueue_s, 1),
            "enqueue_first_call_ms": round(first_call_ms, 1),
            "latency_p50_ms": latency["p50"],
            "latency_p99_ms": latency["p99"],
            "latency_max_ms": latency["max"],
            "latency_samples": len(latencies),
            "drain_span_s": round(span, 3),
            "drain_wall_s": round(drain_wall_s, 3),
            "retried_jobs": row["retried"],
            "drain_claims": row["claims"],
            "drain_completes": row["completes"],
            "cpu_s_enqueue": cpu_enqueue,
            "cpu_s_drain": cpu_drain,
            "synchronous_commit": args.synchronous_commit or "server default",
            "worker_log_level": args.worker_log_level,
            "worker_args": args.worker_arg,
            "coordinator_args": args.coordinator_arg,
            "watch_reported": watch_reported,
            "watch_messages": watch_messages,
            "backlog_enqueue_s": round(backlog_s, 1),
            "backlog_vacuum_s": round(vacuum_s, 1),
            **(filled.figures() if filled else depth.DepthFill.empty_figures()),
        }
    finally:
        procs.kill_all(children)
        await drop_bench_database(admin_dsn, db_name)


def main() -> None:
    args = parse_args()
    if min(args.jobs, args.workers, args.slots, args.batch, args.latency_jobs, args.backlog_batch) < 1:
        sys.exit("--jobs, --workers, --slots, --batch, --latency-jobs and --backlog-batch must be at least 1")
    if min(args.hosts, args.throttled_backlog) < 0:
        sys.exit("--hosts and --throttled-backlog must not be negative")
    if args.depth[0] and (args.hosts or args.throttled_backlog):
        # Claims serve host-bound jobs before hostless ones: the hostless backlog would not be walked.
        sys.exit("a queued --depth backlog is hostless: it does not combine with --hosts or --throttled-backlog")
    log_dir = Path(tempfile.mkdtemp(prefix="crawlfleet-bench-"))
    say(f"child logs in {log_dir}")
    result = asyncio.run(run(args, log_dir))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
