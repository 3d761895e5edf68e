"""Crawl rows as crawlfleet.v1.Crawl messages."""

from __future__ import annotations

from collections.abc import Sequence

from crawlfleet.coordinator.api import convert
from crawlfleet.coordinator.crawling.host_policies import crawl_host_policy
from crawlfleet.coordinator.storage.crawl_rows import CrawlJobCount, CrawlRow
from crawlfleet.coordinator.storage.crawls import CrawlReport
from crawlfleet.v1 import crawls_pb2 as pb

# Job states that end without a page.
_FAILED = frozenset({"dead", "cancelled", "skipped"})


def crawl_message(row: CrawlRow, report: CrawlReport | None = None, counts: Sequence[CrawlJobCount] = ()) -> pb.Crawl:
    """The crawl with its job counts by state (`counts`, or the report's); with its report, its
    rate, errors and depths too."""
    spec = pb.CrawlSpec.FromString(row.spec)
    policy = crawl_host_policy(spec)
    crawl = pb.Crawl(
        id=row.id,
        state=pb.CrawlState.Value(f"CRAWL_STATE_{row.state.upper()}"),
        spec=spec,
        created_at=convert.timestamp(row.created_at),
        finished_at=convert.timestamp(row.finished_at),
        pages_enqueued=row.pages_enqueued,
        out_of_scope=row.out_of_scope,
        over_limit=row.over_limit,
        refresh_of=row.refresh_of or 0,
        starts_at=convert.timestamp(row.starts_at),
        refreshed_by=row.refreshed_by or 0,
        policy_patterns=policy.patterns if policy else [],
    )
    depths: dict[int, pb.DepthCount] = {}
    for count in report.counts if report is not None else counts:
        depth = depths.setdefault(count.depth, pb.DepthCount(depth=count.depth))
        if count.state in _FAILED:
            depth.failed += count.jobs
            crawl.failed += count.jobs
        elif count.state in ("queued", "leased", "succeeded"):
            setattr(depth, count.state, getattr(depth, count.state) + count.jobs)
            setattr(crawl, count.state, getattr(crawl, count.state) + count.jobs)
    if report is None:
        return crawl
    crawl.depths.extend(depths[d] for d in sorted(depths))
    crawl.errors.extend(pb.ErrorCount(error_type=e.error_type, jobs=e.jobs) for e in report.errors)
    crawl.pages_per_second = report.recent_pages / 60
    return crawl
