"""What ``crawlfleet crawl status`` and ``crawl list`` print, from Crawl messages."""

from __future__ import annotations

import datetime as dt

from google.protobuf import timestamp_pb2

from crawlfleet.cli.commands.crawl_report import ended_line, list_table, status_report
from crawlfleet.v1 import crawls_pb2, jobs_pb2

NOW = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)


def at(minutes_ago: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(NOW - dt.timedelta(minutes=minutes_ago))
    return ts


def crawl() -> crawls_pb2.Crawl:
    spec = crawls_pb2.CrawlSpec(
        seeds=["https://shop.example/", "https://shop.example/a", "https://shop.example/b", "https://shop.example/c"],
        scope=crawls_pb2.CRAWL_SCOPE_SAME_DOMAIN,
        deny=["*/cart*"],
        max_depth=2,
        max_pages=500,
        max_pages_per_host=100,
        page=jobs_pb2.ScrapeSpec(render=jobs_pb2.RENDER_MODE_AUTO),
    )
    return crawls_pb2.Crawl(
        id=7,
        state=crawls_pb2.CRAWL_STATE_RUNNING,
        spec=spec,
        created_at=at(5),
        pages_enqueued=120,
        out_of_scope=30,
        over_limit=12,
        queued=12,
        leased=3,
        succeeded=80,
        failed=2,
        pages_per_second=4.5,
        errors=[crawls_pb2.ErrorCount(error_type="http_4xx\x1b[2J", jobs=2)],
        depths=[
            crawls_pb2.DepthCount(depth=0, succeeded=4),
            crawls_pb2.DepthCount(depth=1, queued=12, leased=3, succeeded=76, failed=2),
        ],
    )


def test_the_status_report() -> None:
    report = status_report(crawl(), NOW)
    lines = report.splitlines()
    assert lines[0].split() == ["crawl", "7"] and lines[1].split() == ["state", "running"]
    assert "https://shop.example/ https://shop.example/a https://shop.example/b (+1 more)" in report
    assert "same-domain; depth up to 2; at most 500 pages (100 per host)" in report
    assert "*/cart*" in report and "auto" in report and "(5m00s ago)" in report
    assert "80 stored, 12 queued, 3 leased, 2 failed" in report and "4.5 pages/s over the last minute" in report
    assert "30 link(s) out of scope, 12 over a limit" in report
    assert "    1      12       3         76       2" in report
    # An error type comes from a worker: shown inert.
    assert "http_4xx\\x1b[2J" in report and "\x1b" not in report


def test_the_list_and_the_verdict() -> None:
    done = crawl()
    done.state = crawls_pb2.CRAWL_STATE_FINISHED
    done.finished_at.CopyFrom(at(1))
    rows = list_table([crawl(), done], NOW).splitlines()
    assert rows[0].split() == ["ID", "STATE", "CREATED", "FINISHED", "PAGES", "SEEDS"]
    assert rows[1].split() == ["7", "running", "5m00s", "ago", "-", "120/500", "https://shop.example/", "(+3", "more)"]
    assert "1m00s ago" in rows[2]
    assert ended_line(done) == "crawl 7 finished: 120 page(s) enqueued, 80 stored, 12 queued, 3 leased, 2 failed"
    assert ended_line(crawl()).startswith("crawl 7 is still running: ")
