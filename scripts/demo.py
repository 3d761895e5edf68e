"""The demo: a coordinator on the embedded PostgreSQL, two workers, and a small local site.

Usage: scripts/demo.sh [URL ...]
Without URLs it serves a local site on loopback and scrapes it; with URLs it scrapes those.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
from crawlfleet.v1 import admin_pb2, admin_pb2_grpc, job_queue_pb2, job_queue_pb2_grpc, jobs_pb2

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = {jobs_pb2.JOB_STATE_SUCCEEDED, jobs_pb2.JOB_STATE_DEAD, jobs_pb2.JOB_STATE_CANCELLED}
PAGES = {
    "/": "crawlfleet demo shop",
    "/catalogue": "Catalogue: all products",
    "/product/1": "Blue teapot",
    "/product/2": "Green mug",
    "/product/3": "Red kettle",
    "/about": "About the demo shop",
}
# Not-found pages are permanent failures: they end dead at once, with the reason on the job.
MISSING = ["/product/404"]
STARTUP_TIMEOUT = 120.0
RUN_TIMEOUT = 180.0


class DemoSite(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        title = PAGES.get(self.path)
        if title is None:
            self.send_error(404, "no such page")
            return
        links = "".join(f'<li><a href="{p}">{t}</a></li>' for p, t in PAGES.items())
        body = f"<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1><ul>{links}</ul>"
        data = (body + "</body></html>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve_site() -> str:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DemoSite)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen([sys.executable, "-m", *args], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def wait_for_port(log: Path, proc: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        match = re.search(r"listening on [\d.]+:(\d+)", log.read_text(errors="replace"))
        if match:
            return int(match.group(1))
        if proc.poll() is not None:
            raise SystemExit(f"the coordinator exited during start-up; see {log}")
        time.sleep(0.1)
    raise SystemExit(f"the coordinator did not start within {STARTUP_TIMEOUT:.0f}s; see {log}")


async def run_jobs(address: str, urls: list[str]) -> list[jobs_pb2.Job]:
    async with grpc.aio.insecure_channel(address) as channel:
        queue = job_queue_pb2_grpc.JobQueueStub(channel)
        admin = admin_pb2_grpc.AdminStub(channel)
        specs = [jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url=u)) for u in urls]
        enqueued = await queue.Enqueue(job_queue_pb2.EnqueueRequest(jobs=specs))
        ids = [j.id for j in enqueued.jobs]
        print(f"enqueued {len(ids)} scrape jobs")
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            jobs = [(await admin.GetJob(admin_pb2.GetJobRequest(job_id=i))).job for i in ids]
            states = Counter(jobs_pb2.JobState.Name(j.state).removeprefix("JOB_STATE_").lower() for j in jobs)
            print("progress: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())), flush=True)
            if all(j.state in TERMINAL for j in jobs) or time.monotonic() > deadline:
                return jobs
            await asyncio.sleep(0.5)


def summary(jobs: list[jobs_pb2.Job], elapsed: float, address: str) -> None:
    print("\nresults:")
    for job in jobs:
        state = jobs_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_").lower()
        if job.result.HasField("scrape"):
            page = job.result.scrape
            print(f"  #{job.id} {state:9} {page.status_code} {job.spec.scrape.url}  title={page.title!r}")
        else:
            print(f"  #{job.id} {state:9} {job.spec.scrape.url}  {job.last_error}")
    states = Counter(jobs_pb2.JobState.Name(j.state).removeprefix("JOB_STATE_").lower() for j in jobs)
    retries = sum(max(0, len(j.attempts) - 1) for j in jobs)
    print(
        f"\nsummary: {len(jobs)} jobs, {states['succeeded']} pages stored, {states['dead']} dead, "
        f"{retries} retries, {elapsed:.1f}s"
    )
    print(
        f"\nlook next: buf curl --protocol grpc --http2-prior-knowledge -d '{{\"jobId\": {jobs[0].id}}}' "
        f"http://{address}/crawlfleet.v1.Admin/GetJob"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("urls", nargs="*", help="URLs to scrape instead of the local demo site")
    args = parser.parse_args()
    logs = ROOT / ".crawlfleet" / "demo-logs"
    logs.mkdir(parents=True, exist_ok=True)
    if args.urls:
        urls = args.urls
    else:
        site = serve_site()
        urls = [site + path for path in [*PAGES, *MISSING]]
    started = time.monotonic()
    print("starting the coordinator (embedded PostgreSQL; first start initializes it)...", flush=True)
    coordinator = start(["coordinator", "serve", "--listen", "127.0.0.1:0"], logs / "coordinator.log")
    workers: list[subprocess.Popen[bytes]] = []
    try:
        port = wait_for_port(logs / "coordinator.log", coordinator)
        address = f"127.0.0.1:{port}"
        worker_args = ["worker", "--coordinator", address, "--slots", "4", "--kinds", "scrape"]
        if not args.urls:
            worker_args.append("--allow-loopback")  # the local demo site lives on loopback
        workers = [start([*worker_args, "--worker-id", f"demo-worker-{n}"], logs / f"worker-{n}.log") for n in (1, 2)]
        print(f"coordinator on {address}, 2 workers; logs in {logs.relative_to(ROOT)}/", flush=True)
        jobs = asyncio.run(run_jobs(address, urls))
        summary(jobs, time.monotonic() - started, address)
    finally:
        for proc in [*workers, coordinator]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*workers, coordinator]:
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
    codes = [p.returncode for p in [*workers, coordinator]]
    print(f"stopped coordinator and workers (exit codes {codes})")
    os._exit(0 if all(c == 0 for c in codes) else 1)


if __name__ == "__main__":
    main()
