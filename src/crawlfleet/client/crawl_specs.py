"""What a crawl follows and how it fetches: ``CrawlSpec``, the typed form of ``crawlfleet.v1.CrawlSpec``.

Fields left None (or empty) take the coordinator's defaults (docs/crawls.md); the coordinator
validates the values and answers ``InvalidArgument`` naming the offending field (``spec.max_depth``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from crawlfleet.client.specs import RENDER_MODES, RenderMode, RetryPolicy, Seconds, duration
from crawlfleet.v1 import crawls_pb2, jobs_pb2

CrawlScope: TypeAlias = Literal["same-hostname", "same-domain", "same-origin", "all"]
CRAWL_SCOPES: dict[str, crawls_pb2.CrawlScope.ValueType] = {
    "same-hostname": crawls_pb2.CRAWL_SCOPE_SAME_HOSTNAME,
    "same-domain": crawls_pb2.CRAWL_SCOPE_SAME_DOMAIN,
    "same-origin": crawls_pb2.CRAWL_SCOPE_SAME_ORIGIN,
    "all": crawls_pb2.CRAWL_SCOPE_ALL,
}


@dataclass(frozen=True, kw_only=True)
class CrawlSpec:
    """A crawl: seed URLs, which links to follow from them, how far, and how each page is fetched."""

    # Absolute http(s) URLs, at depth 0.
    seeds: Sequence[str]
    # Which links are followed, relative to the seeds: same-hostname (the default), same-domain,
    # same-origin or all.
    scope: CrawlScope | None = None
    # Globs on the normalized URL: a link must match one of `allow` (when any) and none of `deny`.
    allow: Sequence[str] = ()
    deny: Sequence[str] = ()
    # Links deeper than this are not followed (0: the seeds only); default 3.
    max_depth: int | None = None
    # Pages in all, seeds included (default 10,000); per host (default max_pages); distinct
    # queries per path (default 100).
    max_pages: int | None = None
    max_pages_per_host: int | None = None
    max_query_variants: int | None = None
    # Normalization before a URL is counted once: drop utm_* and the like, sort the query.
    drop_tracking_parameters: bool = False
    sort_query: bool = False
    # Also read the seeds' sites' sitemaps: the URLs they list join at depth 0.
    sitemaps: bool = False
    # How each page is fetched: http (the default), browser or auto.
    render: RenderMode | None = None
    # CSS selectors of the parts of a page whose links are followed; empty: every link.
    follow: Sequence[str] = ()
    # Total time allowed for each fetch.
    timeout: Seconds | None = None
    skip_images: bool = False
    max_images: int | None = None
    # 0 to 100 for every job of the crawl; higher leases first.
    priority: int | None = None
    retry: RetryPolicy | None = None
    # Politeness towards the crawl's hosts while it runs (host policies of the crawl): leases in
    # flight at once per host, least time between two lease starts, obey robots.txt. None leaves
    # the host's own. Looser than the fleet defaults needs the admin role.
    host_concurrency: int | None = None
    host_delay: Seconds | None = None
    obey_robots: bool | None = None

    def to_proto(self) -> crawls_pb2.CrawlSpec:
        if isinstance(self.seeds, str):
            raise TypeError("seeds is a sequence of URLs, e.g. seeds=['https://example.com/']")
        for name, values in (("allow", self.allow), ("deny", self.deny), ("follow", self.follow)):
            if isinstance(values, str):
                raise TypeError(f"{name} is a sequence of strings, not one string")
        spec = crawls_pb2.CrawlSpec(
            seeds=list(self.seeds),
            allow=list(self.allow),
            deny=list(self.deny),
            max_pages=self.max_pages or 0,
            max_pages_per_host=self.max_pages_per_host or 0,
            max_query_variants=self.max_query_variants or 0,
            drop_tracking_parameters=self.drop_tracking_parameters,
            sort_query=self.sort_query,
            sitemaps=self.sitemaps,
            page=self._page(),
            priority=self.priority or 0,
        )
        if self.scope is not None:
            if self.scope not in CRAWL_SCOPES:
                raise ValueError(f"scope must be one of {', '.join(CRAWL_SCOPES)}, not {self.scope!r}")
            spec.scope = CRAWL_SCOPES[self.scope]
        if self.max_depth is not None:
            spec.max_depth = self.max_depth
        if self.retry is not None:
            spec.retry_policy.CopyFrom(self.retry.to_proto())
        if self.host_concurrency is not None or self.host_delay is not None or self.obey_robots is not None:
            spec.politeness.CopyFrom(self._politeness())
        return spec

    def _politeness(self) -> crawls_pb2.CrawlPoliteness:
        politeness = crawls_pb2.CrawlPoliteness(max_concurrency=self.host_concurrency, obey_robots=self.obey_robots)
        if self.host_delay is not None:
            politeness.delay.CopyFrom(duration(self.host_delay))
        return politeness

    def _page(self) -> jobs_pb2.ScrapeSpec:
        page = jobs_pb2.ScrapeSpec(follow_selectors=list(self.follow), skip_images=self.skip_images)
        if self.render is not None:
            if self.render not in RENDER_MODES:
                raise ValueError(f"render must be one of {', '.join(RENDER_MODES)}, not {self.render!r}")
            page.render = RENDER_MODES[self.render]
        if self.timeout is not None:
            page.timeout.CopyFrom(duration(self.timeout))
        if self.max_images is not None:
            page.max_images = self.max_images
        return page


# What start_crawl takes: one seed URL, seed URLs (the defaults for the rest), a CrawlSpec, or the
# API's own crawlfleet.v1.CrawlSpec message.
CrawlLike: TypeAlias = str | Sequence[str] | CrawlSpec | crawls_pb2.CrawlSpec


def crawl_spec(crawl: CrawlLike) -> crawls_pb2.CrawlSpec:
    """The ``crawlfleet.v1.CrawlSpec`` message of what a caller passed to ``start_crawl``."""
    if isinstance(crawl, str):
        return crawls_pb2.CrawlSpec(seeds=[crawl])
    if isinstance(crawl, CrawlSpec):
        return crawl.to_proto()
    if isinstance(crawl, crawls_pb2.CrawlSpec):
        return crawl
    if isinstance(crawl, Sequence) and all(isinstance(seed, str) for seed in crawl):
        return crawls_pb2.CrawlSpec(seeds=list(crawl))
    raise TypeError(f"cannot start a crawl of a {type(crawl).__name__}: give seed URLs or a CrawlSpec")
