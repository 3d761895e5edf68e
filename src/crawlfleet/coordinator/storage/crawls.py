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
from crawlfleet.coordinator.crawling.host_policies import crawl_host_policy
from crawlfleet.coordinator.crawling.pages import (
    DiscoveredPage,
    Discovery,
    Validators,
    links_to_follow,
    offer,
    path_key,
    sitemap_roots,
    sitemap_spec,
)
from crawlfleet.coordinator.crawling.scope import CrawlRules
from crawlfleet.coordinator.errors import WrongState
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
    job_id: int


class StartedCrawl(NamedTuple):
    crawl_id: int
    seeds_enqueued: int


class _CachedCrawl(NamedTuple):
    spec: crawls_pb2.CrawlSpec
    rules: CrawlRules
    refresh_of: int | None


class _CrawlCache:
    """Specs never change once a crawl starts: each coordinator reads a crawl's once."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._entries: dict[int, _CachedCrawl] = {}

    async def get(self, conn: asyncpg.Connection, crawl_id: int) -> _CachedCrawl | None:
        found = self._entries.get(crawl_id)
        if found is not None:
            return found
        row = await q.CRAWL_SPEC_GET.fetch_one(conn, crawl_id=crawl_id)
        if row is None:
            return None
        spec = crawls_pb2.CrawlSpec.FromString(row.spec)
        if len(self._entries) >= self._size:
            self._entries.pop(next(iter(self._entries)))
        found = self._entries[crawl_id] = _CachedCrawl(spec, CrawlRules.of(spec), row.refresh_of)
        return found


class CrawlStore:
    """Crawl operations over an asyncpg pool. `now` parameters exist so tests control time."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._crawls = _CrawlCache()

    async def start(
        self,
        spec: crawls_pb2.CrawlSpec,
        limits: CrawlLimits,
        *,
        owner: str | None,
        now: dt.datetime | None = None,
    ) -> StartedCrawl:
        """Create the crawl and enqueue its seeds (and sitemap jobs), in one transaction."""
        async with connection(self._pool) as conn, conn.transaction():
            crawl = await q.CRAWL_INSERT.fetch_one(
                conn,
                owner=owner,
                spec=spec.SerializeToString(deterministic=True),
                now=now,
                **limits._asdict(),
            )
            assert crawl is not None  # an INSERT … RETURNING returns its row
            return await self._seed(conn, crawl.id, spec, None, now)

    async def refresh(self, crawl_id: int, *, owner: str | None, now: dt.datetime | None = None) -> StartedCrawl | None:
        """Crawl an ended crawl again now, as a new crawl; None unless the crawl exists and is
        `owner`'s (None: any). Raises WrongState if it is running or was refreshed already."""
        async with connection(self._pool) as conn, conn.transaction():
            crawl = await q.CRAWL_GET.fetch_one(conn, crawl_id=crawl_id, owner=owner)
            if crawl is None:
                return None
            started = await self._start_refresh(conn, crawl_id, crawls_pb2.CrawlSpec.FromString(crawl.spec), None, now)
            if started is None:
                why = "is still running" if crawl.state == "running" else "was refreshed already"
                raise WrongState(f"crawl {crawl_id} {why}", metadata={"crawl_id": str(crawl_id)})
            return started

    async def _start_refresh(
        self,
        conn: asyncpg.Connection,
        crawl_id: int,
        spec: crawls_pb2.CrawlSpec,
        starts_at: dt.datetime | None,
        now: dt.datetime | None,
    ) -> StartedCrawl | None:
        made = await q.CRAWL_INSERT_REFRESH.fetch_one(conn, crawl_id=crawl_id, starts_at=starts_at or now, now=now)
        if made is None:
            return None
        return await self._seed(conn, made.id, spec, crawl_id, now)

    async def _seed(
        self,
        conn: asyncpg.Connection,
        crawl_id: int,
        spec: crawls_pb2.CrawlSpec,
        refresh_of: int | None,
        now: dt.datetime | None,
    ) -> StartedCrawl:
        rules = CrawlRules.of(spec)
        # Before the seeds: the hosts they make are then created with the crawl's policy in force.
        policy = crawl_host_policy(spec)
        if policy is not None:
            await q.CRAWL_HOST_POLICIES_INSERT.execute(conn, crawl_id=crawl_id, **policy._asdict())
        validators = await self._validators(conn, refresh_of, list(spec.seeds))
        outcome = await self._offer(conn, crawl_id, offer(rules, spec, spec.seeds, 0, validators), now)
        if spec.sitemaps:
            roots = sitemap_roots(spec)
            await q.CRAWL_SITEMAP_JOBS_INSERT.fetch(
                conn,
                crawl_id=crawl_id,
                urls=roots,
                hosts=[host_of(url) for url in roots],
                specs=[sitemap_spec(spec, url) for url in roots],
                now=now,
            )
        return StartedCrawl(crawl_id, outcome.enqueued)

    @staticmethod
    async def _validators(conn: asyncpg.Connection, refresh_of: int | None, urls: list[str]) -> dict[str, Validators]:
        """For a refresh: the validators of the URLs' previous versions, for conditional GETs."""
        if refresh_of is None or not urls:
            return {}
        rows = await q.CRAWL_PREVIOUS_VALIDATORS.fetch(conn, crawl_id=refresh_of, urls=urls)
        return {row.url: Validators(row.etag, row.last_modified) for row in rows if row.etag or row.last_modified}

    async def discover_in(
        self, conn: asyncpg.Connection, completed: Sequence[CompletedInCrawl], now: dt.datetime | None = None
    ) -> None:
        """Offer each completed page's links (or sitemap's entries) to its crawl, on `conn`, in
        the caller's transaction."""
        for item in completed:
            crawl = await self._crawls.get(conn, item.crawl_id)
            if crawl is None:
                continue  # the crawl was purged
            payload = item.result.WhichOneof("payload")
            if payload == "scrape":
                page = item.result.scrape
                item = item._replace(depth=await self._page_depth(conn, item))
                await self._redirect_seen(conn, item, crawl.rules, now)
                previous = None
                if page.not_modified and crawl.refresh_of is not None:
                    previous = await self._previous_result(conn, crawl.refresh_of, page.final_url)
                urls, depth = links_to_follow(crawl.rules, page, previous), item.depth + 1
            elif payload == "sitemap":  # listed pages join at the sitemap's own depth, like seeds
                urls, depth = [e.url for e in item.result.sitemap.entries], item.depth
            else:
                continue
            found = offer(crawl.rules, crawl.spec, urls, depth)
            if crawl.refresh_of is not None and found.pages:
                validators = await self._validators(conn, crawl.refresh_of, [p.url for p in found.pages])
                found = offer(crawl.rules, crawl.spec, urls, depth, validators)
            await self._offer(conn, item.crawl_id, found, now)
            if found.pages:  # known URLs found closer to a seed than before take the shorter depth
                await q.CRAWL_URLS_DEPTH_LOWER.execute(
                    conn, crawl_id=item.crawl_id, urls=[p.url for p in found.pages], depth=depth
                )

    @staticmethod
    async def _page_depth(conn: asyncpg.Connection, item: CompletedInCrawl) -> int:
        """The page's depth now: its URL's in the crawl, which a shorter path found since it was
        enqueued may have lowered (the job's own otherwise)."""
        row = await q.CRAWL_PAGE_DEPTH.fetch_one(conn, crawl_id=item.crawl_id, job_id=item.job_id)
        return item.depth if row is None else min(row.depth, item.depth)

    @staticmethod
    async def _redirect_seen(
        conn: asyncpg.Connection, item: CompletedInCrawl, rules: CrawlRules, now: dt.datetime | None
    ) -> None:
        """A page reached through redirects: its final URL joins the crawl as fetched by this job,
        before the page's links are offered, so a link to it found later is not fetched again."""
        page = item.result.scrape
        final = rules.normalize(page.final_url) if page.redirects else None
        if final is None or not rules.in_scope(final):
            return
        await q.CRAWL_URL_SEEN_BY_REDIRECT.execute(
            conn,
            crawl_id=item.crawl_id,
            url=final,
            depth=item.depth,
            host=host_of(final),
            path_key=path_key(final),
            job_id=item.job_id,
            now=now,
        )

    @staticmethod
    async def _previous_result(conn: asyncpg.Connection, crawl_id: int, url: str) -> jobs_pb2.ScrapeResult | None:
        row = await q.CRAWL_PREVIOUS_RESULT.fetch_one(conn, crawl_id=crawl_id, url=url)
        return None if row is None else jobs_pb2.JobResult.FromString(row.result).scrape

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
            counts = await q.CRAWL_JOB_COUNTS.fetch(conn, crawl_ids=[crawl_id])
            errors = await q.CRAWL_ERROR_COUNTS.fetch(conn, crawl_id=crawl_id)
            recent = await q.CRAWL_RECENT_PAGES.fetch_one(conn, crawl_id=crawl_id, now=now)
        return CrawlReport(crawl, counts, errors, recent.pages if recent else 0)

    async def page(
        self, *, before_id: int | None, limit: int, owner: str | None
    ) -> list[tuple[CrawlRow, list[CrawlJobCount]]]:
        """A page of crawls, newest first, each with its job counts (kept counts: cheap at any size)."""
        async with connection(self._pool) as conn:
            rows = await q.CRAWL_LIST.fetch(conn, before_id=before_id, limit=limit, owner=owner)
            counts = await q.CRAWL_JOB_COUNTS.fetch(conn, crawl_ids=[row.id for row in rows]) if rows else []
        by_crawl: dict[int, list[CrawlJobCount]] = {row.id: [] for row in rows}
        for count in counts:
            by_crawl[count.crawl_id].append(count)
        return [(row, by_crawl[row.id]) for row in rows]

    async def cancel(self, crawl_id: int, *, owner: str | None, now: dt.datetime | None = None) -> CrawlCancelOutcome:
        """Stop the crawl, then (a transaction apart: see crawl_cancel) cancel its live jobs."""
        async with connection(self._pool) as conn:
            stopped = await q.CRAWL_CANCEL.fetch_one(conn, crawl_id=crawl_id, owner=owner, now=now)
            if stopped is None:
                return CrawlCancelOutcome(None, None, 0, 0, 0)
            if stopped.state != "cancelled":
                return CrawlCancelOutcome(stopped.id, stopped.state, 0, 0, 0)
            jobs = await q.CRAWL_CANCEL_JOBS.fetch_one(conn, crawl_id=crawl_id, now=now)
        assert jobs is not None  # one row, always
        return CrawlCancelOutcome(stopped.id, stopped.state, *jobs)

    async def finish_idle(self, now: dt.datetime | None = None) -> list[int]:
        """Finish running crawls that have no queued or leased job left, and start the next round
        of those that refresh themselves, in one transaction; the ids finished."""
        async with connection(self._pool) as conn, conn.transaction():
            finished = await q.CRAWL_FINISH_IDLE.fetch(conn, now=now)
            for crawl in finished:
                spec = crawls_pb2.CrawlSpec.FromString(crawl.spec)
                if spec.HasField("refresh_interval"):
                    starts_at = crawl.finished_at + spec.refresh_interval.ToTimedelta()
                    await self._start_refresh(conn, crawl.id, spec, starts_at, now)
        return [crawl.id for crawl in finished]
