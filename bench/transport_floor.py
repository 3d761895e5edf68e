"""The least CPU a job can cost crawlfleet's Python processes: gRPC, protobuf and asyncpg, no queue.

    python bench/transport_floor.py [--jobs 100000] [--workers 2] [--claim 200] [--complete 100] [--rounds 3] [--db]

A stand-in coordinator (one process, grpc.aio, the real JobQueue service and messages) answers
each Lease with --claim no-op jobs made in memory, the way the real one builds its answer (id,
kind, spec parsed into place, token, expiry, attempts), and takes each Complete by reading every
job's id, token and result, as the real one must before it stores them. W stand-in workers (one
process each) Lease, then Complete the jobs in calls of --complete, one call after another,
until the jobs run out. Nothing is validated, nothing is stored, nothing else runs.

With --db the stand-in coordinator also does what its database driver must: it fetches each
claim's rows from PostgreSQL (one trivial statement that makes the rows, no table) and sends each
Complete's ids, tokens and results as three arrays to one trivial statement. So the figure is
the client side of asyncpg plus a near-empty statement, not the queue's SQL.

Per round: jobs/s, and the CPU per job (µs, from /proc) of the coordinator, of the workers
together, and (with --db) of the PostgreSQL server. What the real coordinator and workers spend
above this is their own code; what PostgreSQL spends in bench/job_sql_cost.py is the queue's SQL.
The last line is one JSON object with every round and the medians.
"""

# ruff: noqa: E402 (sys.path is fixed before the imports, as in bench/queue.py)

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
import signal
import statistics
import tempfile
import time
import uuid
from typing import Any

import asyncpg
import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from bench import procs
from bench.queue import HOSTLESS_SPEC, create_bench_database, drop_bench_database
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import job_queue_pb2_grpc, jobs_pb2

START_TIMEOUT = 30.0
SCRIPT = str(Path(__file__).resolve())
SERVICE = pb.DESCRIPTOR.services_by_name["JobQueue"].full_name
Ctx = grpc.aio.ServicerContext[Any, Any]
SPEC = HOSTLESS_SPEC.SerializeToString()
NOOP_RESULT = jobs_pb2.JobResult(noop=jobs_pb2.NoopResult())

# The rows a claim answers, made by the server: the columns the real claim returns.
CLAIM_ROWS = """
SELECT g AS id, 'noop' AS kind, $1::bytea AS spec, 1 AS attempt, 3 AS max_attempts,
       gen_random_uuid() AS lease_token, now() + interval '1 hour' AS lease_expires_at
FROM generate_series($2::bigint, $3::bigint) AS g
"""
# What a Complete hands the database: ids, tokens and results as arrays, read once.
TAKE_COMPLETES = "SELECT count(*) FROM unnest($1::bigint[], $2::uuid[], $3::bytea[])"


class FloorQueue:
    """Lease and Complete with nothing behind them but a counter (and, with a pool, a statement)."""

    def __init__(self, jobs: int, pool: asyncpg.Pool | None) -> None:
        self._left = jobs
        self._next_id = 1
        self._pool = pool
        self._token = uuid.uuid4()
        self.completed = 0

    async def Lease(self, request: pb.LeaseRequest, context: Ctx) -> pb.LeaseResponse:
        count = min(request.max_jobs, self._left)
        first, self._left, self._next_id = self._next_id, self._left - count, self._next_id + count
        response = pb.LeaseResponse(lease_duration=duration_pb2.Duration(seconds=60))
        if not count:
            return response
        if self._pool is not None:
            rows: list[Any] = await self._pool.fetch(CLAIM_ROWS, SPEC, first, first + count - 1)
        else:
            expiry = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
            rows = [(i, "noop", SPEC, 1, 3, self._token, expiry) for i in range(first, first + count)]
        expires = timestamp_pb2.Timestamp()
        expires.FromDatetime(rows[0][6])
        add = response.jobs.add
        for job_id, kind, spec, attempt, max_attempts, token, _ in rows:
            job = add(id=job_id, kind=kind, lease_token=str(token), attempt=attempt, max_attempts=max_attempts)
            job.spec.MergeFromString(spec)
            job.lease_expires_at.CopyFrom(expires)
        return response

    async def Complete(self, request: pb.CompleteRequest, context: Ctx) -> pb.CompleteResponse:
        ids, tokens, results = [], [], []
        for job in request.jobs:
            ids.append(job.job_id)
            tokens.append(job.lease_token)
            results.append(job.result.SerializeToString())
        if self._pool is not None:
            await self._pool.fetchval(TAKE_COMPLETES, ids, tokens, results)
        self.completed += len(ids)
        return pb.CompleteResponse()


async def serve(args: argparse.Namespace) -> None:
    pool = await asyncpg.create_pool(args.dsn, min_size=2, max_size=4) if args.dsn else None
    queue = FloorQueue(args.jobs, pool)
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Lease": grpc.unary_unary_rpc_method_handler(
            queue.Lease, pb.LeaseRequest.FromString, pb.LeaseResponse.SerializeToString
        ),
        "Complete": grpc.unary_unary_rpc_method_handler(
            queue.Complete, pb.CompleteRequest.FromString, pb.CompleteResponse.SerializeToString
        ),
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    await stopping.wait()
    await server.stop(None)
    if pool is not None:
        await pool.close()


async def work(args: argparse.Namespace) -> None:
    """Lease, then Complete what was leased, until a Lease answers nothing; then print the loop's
    start and end (wall clock) and its CPU seconds, start-up (imports, connecting) left out."""
    async with grpc.aio.insecure_channel(args.address) as channel:
        await channel.channel_ready()
        stub = job_queue_pb2_grpc.JobQueueStub(channel)
        request = pb.LeaseRequest(worker=pb.WorkerInfo(worker_id=f"floor-{os.getpid()}"), max_jobs=args.claim)
        started, cpu = time.time(), time.process_time()
        while True:
            leased = (await stub.Lease(request)).jobs
            if not leased:
                print(f"worked {started} {time.time()} {time.process_time() - cpu}", flush=True)
                return
            for start in range(0, len(leased), args.complete):
                completes = pb.CompleteRequest()
                add = completes.jobs.add
                for job in leased[start : start + args.complete]:
                    add(job_id=job.id, lease_token=job.lease_token, result=NOOP_RESULT)
                await stub.Complete(completes)


async def one_round(args: argparse.Namespace, dsn: str | None, postmaster: int | None, log_dir: Path) -> dict[str, Any]:
    sizes = ["--jobs", str(args.jobs), "--claim", str(args.claim), "--complete", str(args.complete)]
    server_args = [SCRIPT, "--role", "server", *sizes] + (["--dsn", dsn] if dsn else [])
    server = procs.start_python("floor-coordinator", server_args, log_dir=log_dir, cwd=REPO)
    children = [server]
    try:
        line = await procs.wait_for_line(server, r"listening on (\S+)", START_TIMEOUT)
        address = line.group(1)
        workers: list[procs.Child] = []
        # Workers are counted as a group, from zero, so that `other` is only the rest of the host;
        # their figure is then replaced by their loops' own CPU (start-up left out).
        meter = procs.CpuMeter(
            lambda: {"coordinator": [server.pid], "workers": [w.pid for w in workers]}, postmaster=postmaster
        )
        meter.start()
        worker_args = [SCRIPT, "--role", "worker", "--address", address, *sizes]
        workers += [
            procs.start_python(f"floor-worker-{i}", worker_args, log_dir=log_dir, cwd=REPO) for i in range(args.workers)
        ]
        children += workers
        reports = [await procs.wait_for_line(w, r"worked (\S+) (\S+) (\S+)", args.timeout) for w in workers]
        cpu = meter.read()  # workers not yet waited for: their CPU is still readable
        for w in workers:  # each ends on its own once it has printed
            await asyncio.wait_for(asyncio.to_thread(w.proc.wait), START_TIMEOUT)
        await procs.stop_all([server], START_TIMEOUT)
    finally:
        procs.kill_all(children)
    began, ended = min(float(r.group(1)) for r in reports), max(float(r.group(2)) for r in reports)
    cpu["workers"] = sum(float(r.group(3)) for r in reports)
    per_job = {name: round(seconds * 1e6 / args.jobs, 2) for name, seconds in cpu.items() if name != "other"}
    return {"jobs_per_s": round(args.jobs / (ended - began), 1), "us_per_job": per_job, "cpu_s_other": cpu.get("other")}


async def drive(args: argparse.Namespace) -> dict[str, Any]:
    dsn = postmaster = admin_dsn = db_name = None
    if args.db:
        admin_dsn, db_name, dsn, postmaster = await create_bench_database("crawlfleet_floor")
    try:
        with tempfile.TemporaryDirectory(prefix="crawlfleet-floor-") as log_dir:
            rounds = []
            for number in range(1, args.rounds + 1):
                result = await one_round(args, dsn, postmaster, Path(log_dir))
                print(f"round {number}: {json.dumps(result)}", flush=True)
                rounds.append(result)
    finally:
        if admin_dsn and db_name:
            await drop_bench_database(admin_dsn, db_name)
    sides = rounds[0]["us_per_job"].keys()
    median = {side: statistics.median(r["us_per_job"][side] for r in rounds) for side in sides}
    return {
        "jobs": args.jobs,
        "workers": args.workers,
        "claim": args.claim,
        "complete": args.complete,
        "db": args.db,
        "rounds": rounds,
        "median_jobs_per_s": statistics.median(r["jobs_per_s"] for r in rounds),
        "median_us_per_job": median,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--claim", type=int, default=200, help="jobs per Lease")
    parser.add_argument("--complete", type=int, default=100, help="jobs per Complete")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db", action="store_true", help="fetch claims from and hand completes to PostgreSQL")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--role", choices=["drive", "server", "worker"], default="drive", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.role == "server":
        asyncio.run(serve(args))
    elif args.role == "worker":
        asyncio.run(work(args))
    else:
        print(json.dumps(asyncio.run(drive(args))))


if __name__ == "__main__":
    main()
