"""How ``crawlfleet crawl`` shows crawls: the status report, the list table, the progress line."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from crawlfleet.cli.render import ago, format_duration, table, truncate, when
from crawlfleet.client import CrawlState
from crawlfleet.client.crawl_specs import CRAWL_SCOPES
from crawlfleet.v1 import crawls_pb2, jobs_pb2

SEEDS_SHOWN = 3
_SCOPE_NAMES = {value: name for name, value in CRAWL_SCOPES.items()}


def crawl_state_name(value: int) -> str:
    """``CRAWL_STATE_FINISHED`` -> ``finished``; a state this CLI does not know shows as its number."""
    try:
        return CrawlState.from_proto(value).value
    except ValueError:
        return str(value)


def jobs_total(crawl: crawls_pb2.Crawl) -> int:
    return crawl.queued + crawl.leased + crawl.succeeded + crawl.failed


def job_counts(crawl: crawls_pb2.Crawl) -> str:
    """``80 stored, 12 queued, 3 leased, 2 failed``: the crawl's jobs by state."""
    return f"{crawl.succeeded} stored, {crawl.queued} queued, {crawl.leased} leased, {crawl.failed} failed"


def speed(crawl: crawls_pb2.Crawl) -> str:
    return f"{crawl.pages_per_second:.1f} pages/s"


def seeds_text(seeds: Sequence[str], shown: int = SEEDS_SHOWN) -> str:
    text = " ".join(truncate(seed, 80) for seed in seeds[:shown])
    return text + (f" (+{len(seeds) - shown} more)" if len(seeds) > shown else "")


def limits_text(spec: crawls_pb2.CrawlSpec) -> str:
    scope = _SCOPE_NAMES.get(spec.scope, "same-hostname")
    per_host = f" ({spec.max_pages_per_host} per host)" if spec.max_pages_per_host != spec.max_pages else ""
    return f"{scope}; depth up to {spec.max_depth}; at most {spec.max_pages} pages{per_host}"


def politeness_text(crawl: crawls_pb2.Crawl) -> str:
    """``1 at once, 2s apart, robots.txt obeyed on shop.example``: what the crawl asks of its hosts."""
    asked = crawl.spec.politeness
    parts = [f"{asked.max_concurrency} at once"] if asked.HasField("max_concurrency") else []
    if asked.HasField("delay"):
        seconds = asked.delay.ToNanoseconds() / 1e9
        parts.append(f"{format_duration(seconds)} apart" if seconds else "no delay")
    if asked.HasField("obey_robots"):
        parts.append(f"robots.txt {'obeyed' if asked.obey_robots else 'ignored'}")
    live = "while it runs" if crawl.state == crawls_pb2.CRAWL_STATE_RUNNING else "(ended with the crawl)"
    return f"{', '.join(parts)} on {' '.join(crawl.policy_patterns)} {live}"


def render_name(spec: crawls_pb2.CrawlSpec) -> str:
    return jobs_pb2.RenderMode.Name(spec.page.render).removeprefix("RENDER_MODE_").lower()


def status_report(crawl: crawls_pb2.Crawl, now: dt.datetime) -> str:
    """What ``crawl status`` prints: the crawl, its jobs, its depths and its errors."""
    spec = crawl.spec
    fields: list[tuple[str, object]] = [
        ("crawl", crawl.id),
        ("state", crawl_state_name(crawl.state)),
        ("seeds", seeds_text(spec.seeds)),
        ("limits", limits_text(spec)),
    ]
    fields += [("allow", " ".join(spec.allow))] if spec.allow else []
    fields += [("deny", " ".join(spec.deny))] if spec.deny else []
    fields += [("follow", " ".join(spec.page.follow_selectors))] if spec.page.follow_selectors else []
    fields += [("politeness", politeness_text(crawl))] if crawl.policy_patterns else []
    fields += [
        ("render", render_name(spec)),
        ("created", when(crawl.created_at, now)),
        ("finished", when(crawl.finished_at, now)),
        ("pages", f"{crawl.pages_enqueued} enqueued of at most {spec.max_pages}"),
        ("jobs", job_counts(crawl)),
        ("rate", f"{speed(crawl)} over the last minute"),
        ("not followed", f"{crawl.out_of_scope} link(s) out of scope, {crawl.over_limit} over a limit"),
    ]
    blocks = [table(None, fields)]
    if crawl.depths:
        rows = [(d.depth, d.queued, d.leased, d.succeeded, d.failed) for d in crawl.depths]
        blocks.append(table(["DEPTH", "QUEUED", "LEASED", "SUCCEEDED", "FAILED"], rows, right=range(5)))
    if crawl.errors:
        errors = [(e.error_type or "-", e.jobs) for e in crawl.errors]
        blocks.append(table(["ERROR TYPE", "JOBS"], errors, right=[1]))
    return "\n\n".join(blocks)


def list_table(crawls: Sequence[crawls_pb2.Crawl], now: dt.datetime) -> str:
    """What ``crawl list`` prints: one crawl a row, newest first."""
    rows = [
        (
            c.id,
            crawl_state_name(c.state),
            ago(c.created_at, now),
            ago(c.finished_at, now),
            f"{c.pages_enqueued}/{c.spec.max_pages}",
            seeds_text(c.spec.seeds, shown=1),
        )
        for c in crawls
    ]
    return table(["ID", "STATE", "CREATED", "FINISHED", "PAGES", "SEEDS"], rows, right=[0, 4])


def ended_line(crawl: crawls_pb2.Crawl) -> str:
    """The verdict ``crawl wait`` (and ``start --wait``) prints first: ``crawl 7 finished: …``."""
    state = crawl_state_name(crawl.state)
    where = "is still running" if state == CrawlState.RUNNING else state
    return f"crawl {crawl.id} {where}: {crawl.pages_enqueued} page(s) enqueued, {job_counts(crawl)}"
