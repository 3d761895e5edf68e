"""``crawlfleet demo URL…``: the given URLs enqueued as scrape jobs, followed until they finish."""

from __future__ import annotations

import time
from collections import Counter

from crawlfleet.cli.demo.waiting import Waiting
from crawlfleet.cli.render import STATES, TERMINAL_STATES, state_name
from crawlfleet.client import Client, ScrapeJob
from crawlfleet.v1 import jobs_pb2


def enqueue_urls(client: Client, urls: list[str]) -> list[int]:
    return [job.id for job in client.enqueue_many(ScrapeJob(url=u, render="auto") for u in urls)]


def follow_jobs(client: Client, ids: list[int], deadline: float, waiting: Waiting) -> dict[int, jobs_pb2.Job]:
    """Polls the jobs until all are finished (or the deadline), showing progress."""
    jobs: dict[int, jobs_pb2.Job] = {}
    pending = list(ids)
    while True:
        for job_id in pending:  # a finished job is read once more, with its result, and no more
            jobs[job_id] = client.get_job(job_id)
        pending = [i for i in pending if state_name(jobs[i].state) not in TERMINAL_STATES]
        states = Counter(state_name(j.state) for j in jobs.values())
        line = ", ".join(f"{states[s]} {s}" for s in STATES if states[s])
        done = len(ids) - len(pending)
        waiting.show(done, len(ids), f"{done}/{len(ids)} finished: {line}", ended=not pending)
        if not pending or time.monotonic() >= deadline:
            waiting.finish()
            return jobs
        waiting.pause()
