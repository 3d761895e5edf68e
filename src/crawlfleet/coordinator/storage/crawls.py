"""Crawls in PostgreSQL: start, discover, read, cancel, finish.

Discovery (`discover_in`) runs inside the transaction that completes a page, on its connection:
the links a page gives are never lost to a crash between storing the page and enqueuing them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

import asyncpg

from crawlfleet.common.hosts import host_of
from crawlfleet.coordinator.crawling.pages import (
    DiscoveredPage,
    Discovery,
    links_to_follow,
    offer,
    sitemap_roots,
    sitemap_spec,
)
from crawlfleet.coordinator.crawling.scope import CrawlRules
from crawlfleet.coordinator.storage import statements as q
from crawlfleet.coordinator.storage.crawl_rows import (
    CrawlCancelOutcome,
    CrawlErrorCount,
    CrawlJobCount,
    CrawlRow,
    DiscoverOutcome,
)
from crawlfleet.coordinator.storage.translate import connection
from crawlfleet.v1 import crawls_pb2, jobs_pb2


class CrawlLimits(NamedTuple):
    """A validated crawl's limits and the columns of its jobs."""

    max_depth: int
    max_pages: int
    max_pages_per_host: int
    max_query_variants: int
    priority: int
    max_attempts: int
    retry_initial_ms: int
    retry_multiplier: float
    retry_max_ms: int


class CrawlReport(NamedTuple):
    crawl: CrawlRow
    counts: list[CrawlJobCount]
    errors: list[CrawlErrorCount]
    recent_pages: int


class CompletedInCrawl(NamedTuple):
    """A job of a crawl just completed, with what its result offers the crawl."""

    crawl_id: int
    depth: int
    result: jobs_pb2.JobResult


class _CrawlRulesCache:
    """Specs never change once a crawl starts: each coordinator reads a crawl's once."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._entries: dict[int, tuple[crawls_pb2.CrawlSpec, CrawlRules]] = {}

    async def get(self, conn: asyncpg.Connection, crawl_id: int) -> tuple[crawls_pb2.CrawlSpec, CrawlRules] | None:
        found = self._entries.get(crawl_id)
        if found is not None:
            return found
        row = await q.CRAWL_SPEC_GET.fetch_one(conn, crawl_id=crawl_id)
        if row is None:
            return None
        spec = crawls_pb2.CrawlSpec.FromString(row.spec)
        if len(self._entries) >= self._size:
            self._entries.pop(next(iter(self._entries)))
        found = self._entries[crawl_id] = (spec, CrawlRules.of(spec))
        return found


class CrawlStore:
    """Crawl operations over an asyncpg pool. `now` parameters exist so tests control time."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._rules = _CrawlRulesCache()

    async def start(
        self,
        spec: crawls_pb2.CrawlSpec,
        limits: CrawlLimits,
        *,
        owner: str | None,
        now: dt.datetime | None = None,
    ) -> tuple[int, int]:
        """Create the crawl and enqueue its seeds, in one transaction; (crawl id, seeds enqueued)."""
        async with connection(self._pool) as conn, conn.transaction():
            crawl = await q.CRAWL_INSERT.fetch_one(
                conn,
                owner=owner,
                spec=spec.SerializeToString(deterministic=True),
                now=now,
                **limits._asdict(),
            )
            assert crawl is not None  # an INSERT … RETURNING returns its row
            rules = CrawlRules.of(spec)
            outcome = await self._offer(conn, crawl.id, offer(rules, spec, spec.seeds, 0), now)
            if spec.sitemaps:
                roots = sitemap_roots(spec)
                await q.CRAWL_SITEMAP_JOBS_INSERT.fetch(
                    conn,
                    crawl_id=crawl.id,
                    urls=roots,
                    hosts=[host_of(url) for url in roots],
                    specs=[sitemap_spec(spec, url) for url in roots],
                    now=now,
                )
        return crawl.id, outcome.enqueued

    async def discover_in(
        self, conn: asyncpg.Connection, completed: Sequence[CompletedInCrawl], now: dt.datetime | None = None
    ) -> None:
        """Offer each completed page's links (or sitemap's entries) to its crawl, on `conn`, in
        the caller's transaction."""
        for item in completed:
            cached = await self._rules.get(conn, item.crawl_id)
            if cached is None:
                continue  # the crawl was purged
            spec, rules = cached
            payload = item.result.WhichOneof("payload")
            if payload == "scrape":
                found = offer(rules, spec, links_to_follow(rules, item.result.scrape), item.depth + 1)
            elif payload == "sitemap":  # listed pages join at the sitemap's own depth, like seeds
                found = offer(rules, spec, [e.url for e in item.result.sitemap.entries], item.depth)
            else:
                continue
            await self._offer(conn, item.crawl_id, found, now)

    @staticmethod
    async def _offer(
        conn: asyncpg.Connection, crawl_id: int, found: Discovery, now: dt.datetime | None
    ) -> DiscoverOutcome:
        pages: Sequence[DiscoveredPage] = found.pages
        outcome = await q.CRAWL_DISCOVER.fetch_one(
            conn,
            crawl_id=crawl_id,
            urls=[p.url for p in pages],
            hosts=[p.host for p in pages],
            path_keys=[p.path_key for p in pages],
            depths=[p.depth for p in pages],
            specs=[p.spec for p in pages],
            out_of_scope=found.out_of_scope,
            too_deep=found.too_deep,
            now=now,
        )
        assert outcome is not None  # the function always returns one row
        return outcome

    async def report(self, crawl_id: int, *, owner: str | None, now: dt.datetime | None = None) -> CrawlReport | None:
        """The crawl and its progress; None unless it exists and is `owner`'s (None: any)."""
        async with connection(self._pool) as conn:
            crawl = await q.CRAWL_GET.fetch_one(conn, crawl_id=crawl_id, owner=owner)
            if crawl is None:
                return None
            counts = await q.CRAWL_JOB_COUNTS.fetch(conn, crawl_id=crawl_id)
            errors = await q.CRAWL_ERROR_COUNTS.fetch(conn, crawl_id=crawl_id)
            recent = await q.CRAWL_RECENT_PAGES.fetch_one(conn, crawl_id=crawl_id, now=now)
        return CrawlReport(crawl, counts, errors, recent.pages if recent else 0)

    async def page(self, *, before_id: int | None, limit: int, owner: str | None) -> list[CrawlRow]:
        async with connection(self._pool) as conn:
            return await q.CRAWL_LIST.fetch(conn, before_id=before_id, limit=limit, owner=owner)

    async def cancel(self, crawl_id: int, *, owner: str | None, now: dt.datetime | None = None) -> CrawlCancelOutcome:
        async with connection(self._pool) as conn:
            outcome = await q.CRAWL_CANCEL.fetch_one(conn, crawl_id=crawl_id, owner=owner, now=now)
        assert outcome is not None  # one row, its id NULL for a missing crawl
        return outcome

    async def finish_idle(self, now: dt.datetime | None = None) -> list[int]:
        """Finish running crawls that have no queued or leased job left; their ids."""
        async with connection(self._pool) as conn:
            return [row.id for row in await q.CRAWL_FINISH_IDLE.fetch(conn, now=now)]
