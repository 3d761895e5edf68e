"""The pages a crawl gets from a stored result: its links (or a sitemap's entries), normalized,
within scope and depth, as the rows crawlfleet_discover takes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

from crawlfleet.common.hosts import host_of
from crawlfleet.coordinator.crawling.scope import CrawlRules
from crawlfleet.v1 import crawls_pb2, jobs_pb2

# sitemaps.org: a sitemap lists at most 50,000 URLs.
MAX_SITEMAP_URLS = 50_000


class DiscoveredPage(NamedTuple):
    """A URL offered to a crawl, and the spec of the job that would fetch it."""

    url: str
    host: str
    path_key: str
    depth: int
    spec: bytes


class Discovery(NamedTuple):
    """What a crawl is offered from one result, and what it left out on the way."""

    pages: list[DiscoveredPage]
    out_of_scope: int
    too_deep: int


class Validators(NamedTuple):
    """A previous fetch's ETag and Last-Modified, for a conditional GET ("" when absent)."""

    etag: str
    last_modified: str

    @classmethod
    def of(cls, page: jobs_pb2.ScrapeResult) -> Validators:
        return cls(page.headers.get("etag", ""), page.headers.get("last-modified", ""))


def page_spec(spec: crawls_pb2.CrawlSpec, url: str, validators: Validators | None = None) -> bytes:
    """The JobSpec of the crawl's job for `url` (deterministic bytes: dedupe compares them); with
    a previous fetch's validators, a conditional GET."""
    page = jobs_pb2.ScrapeSpec()
    page.CopyFrom(spec.page)
    page.url = url
    if validators is not None:
        page.if_none_match, page.if_modified_since = validators
    job = jobs_pb2.JobSpec(scrape=page, priority=spec.priority)
    if spec.HasField("retry_policy"):
        job.retry_policy.CopyFrom(spec.retry_policy)
    return job.SerializeToString(deterministic=True)


def path_key(url: str) -> str:
    """The URL without its query: the queries of one path count against max_query_variants."""
    return url.partition("?")[0]


def offer(
    rules: CrawlRules,
    spec: crawls_pb2.CrawlSpec,
    urls: Iterable[str],
    depth: int,
    validators: Mapping[str, Validators] | None = None,
) -> Discovery:
    """The pages `urls` (raw, in preference order) give a crawl at `depth`; `validators` by URL
    make their fetches conditional (a refresh)."""
    validators = validators or {}
    if depth > rules.max_depth:
        return Discovery([], 0, len(set(urls)))
    pages: list[DiscoveredPage] = []
    seen: set[str] = set()
    out_of_scope = 0
    for raw in urls:
        url = rules.normalize(raw)
        if url is None or url in seen:
            continue
        seen.add(url)
        if not rules.in_scope(url):
            out_of_scope += 1
            continue
        spec_bytes = page_spec(spec, url, validators.get(url))
        pages.append(DiscoveredPage(url, host_of(url), path_key(url), depth, spec_bytes))
    return Discovery(pages, out_of_scope, 0)


def links_to_follow(
    rules: CrawlRules, result: jobs_pb2.ScrapeResult, previous: jobs_pb2.ScrapeResult | None = None
) -> list[str]:
    """The links of a stored page the crawl follows: none if the page itself ended up out of
    scope (a redirect away from the site), only those marked `followed` under follow selectors.
    An unchanged page (304) has the links of its previous version."""
    if result.not_modified:
        if previous is None:
            return []
        result = previous
    final = rules.normalize(result.final_url)
    if final is None or not rules.in_scope(final):
        return []
    return [link.url for link in result.links if link.followed or not rules.follow_only_selected]


def sitemap_roots(spec: crawls_pb2.CrawlSpec) -> list[str]:
    """The root URL of each site of the seeds: its sitemap job reads robots.txt's Sitemap: lines
    and /sitemap.xml there."""
    roots: list[str] = []
    for seed in spec.seeds:
        parts = urlsplit(seed)
        root = f"{parts.scheme}://{parts.netloc}/"
        if root not in roots:
            roots.append(root)
    return roots


def sitemap_spec(spec: crawls_pb2.CrawlSpec, root: str) -> bytes:
    """The JobSpec of a crawl's sitemap job for a site (listing at most the crawl's pages)."""
    job = jobs_pb2.JobSpec(
        sitemap=jobs_pb2.SitemapSpec(url=root, max_urls=min(spec.max_pages, MAX_SITEMAP_URLS)), priority=spec.priority
    )
    if spec.HasField("retry_policy"):
        job.retry_policy.CopyFrom(spec.retry_policy)
    return job.SerializeToString(deterministic=True)
