"""Rows of the crawl queries (crawls.sql)."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple


class NewCrawl(NamedTuple):
    id: int


class DiscoverOutcome(NamedTuple):
    """What a crawl made of pages offered to it."""

    enqueued: int
    known: int
    over_limit: int


class CrawlSpecRow(NamedTuple):
    spec: bytes
    refresh_of: int | None


class PreviousValidators(NamedTuple):
    """A URL's validators from its latest full fetch in the crawls a refresh follows on."""

    url: str
    etag: str
    last_modified: str


class PreviousResult(NamedTuple):
    result: bytes


class CrawlRow(NamedTuple):
    id: int
    state: str
    spec: bytes
    created_at: dt.datetime
    finished_at: dt.datetime | None
    pages_enqueued: int
    out_of_scope: int
    over_limit: int
    refresh_of: int | None
    starts_at: dt.datetime
    refreshed_by: int | None


class CrawlJobCount(NamedTuple):
    crawl_id: int
    depth: int
    state: str
    jobs: int


class CrawlErrorCount(NamedTuple):
    error_type: str
    jobs: int


class RecentPages(NamedTuple):
    pages: int


class CrawlStopped(NamedTuple):
    id: int
    state: str


class CrawlJobsCancelled(NamedTuple):
    cancelled_jobs: int
    stopping_jobs: int
    finished_notified: int


class CrawlCancelOutcome(NamedTuple):
    """id None: no such crawl (for this caller)."""

    id: int | None
    state: str | None
    cancelled_jobs: int
    stopping_jobs: int
    finished_notified: int


class FinishedCrawl(NamedTuple):
    id: int
    spec: bytes
    finished_at: dt.datetime


class SitemapJobsMade(NamedTuple):
    jobs: int
    hosts_woken: int | None


class PageDepth(NamedTuple):
    """A crawl page's depth now (crawl_page_depth)."""

    depth: int


class CrawlPurged(NamedTuple):
    """crawl_id None: no ended crawl was due."""

    crawl_id: int | None
    deleted_urls: int
    deleted: bool
