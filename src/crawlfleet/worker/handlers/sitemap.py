"""The `sitemap` kind: read a site's sitemaps and report the URLs they list (a crawl's seeds).

The job's URL is a sitemap (XML or text, gzipped or not, or an index), or a site's root ("/"):
then the sitemaps named by the `Sitemap:` lines of its robots.txt are read, and /sitemap.xml.
An index's sitemaps are read after it in the order listed, indexes in indexes two levels deep at
most, each sitemap once, one request at a time through the guarded fetcher (egress guard, the
worker's User-Agent), at most `--sitemap-max-files` of them.

Only sitemaps on the job's own host are read. The fleet's politeness counts a host's jobs by their
target URL; a job reading another host's files would go around that host's limits. A sitemap on
another host is reported as an error entry (`other_host`): enqueue a sitemap job for it.

A sitemap that cannot be read is an error entry ("<url>: <error_type>: <message>"), not a failure
of the job, unless nothing at all was read: then the job fails with the class of a retryable
failure if there was one (http_5xx, http_429, timeout, network errors; Retry-After honoured),
else of the first one (http_4xx, invalid_sitemap, sitemap_too_large, ...), not retryable.
A 429 stops the job's requests: the host asked for fewer.

Like a page, the job's URL is checked against its host's robots.txt first (worker/robots.py): a
lease marked `fetch_robots` fetches and reports it for the fleet, a URL it disallows ends the job
skipped, and an unreachable one gives the job back.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from urllib.parse import urljoin

from crawlfleet.common import limits
from crawlfleet.common.hosts import host_of
from crawlfleet.common.urls import InvalidURL, normalize_url
from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.context import JobContext
from crawlfleet.worker.errors import JobError
from crawlfleet.worker.handlers.scrape import check_status
from crawlfleet.worker.pipeline.fetch import FetchedResponse
from crawlfleet.worker.pipeline.sitemap_settings import (
    MAX_INDEX_DEPTH,
    MAX_ROBOTS_BYTES,
    MAX_SITEMAP_URLS,
    RESULT_BUDGET_BYTES,
)
from crawlfleet.worker.pipeline.sitemaps import (
    Entry,
    SitemapError,
    UrlCollector,
    is_root,
    parse_sitemap,
    robots_sitemaps,
)

# Error entries listed; past them one entry says how many more there were.
MAX_ERRORS = 200


@dataclass(frozen=True)
class _Pending:
    url: str
    # 0: the job's URL, or one found for a root; n + 1: listed by an index at depth n.
    depth: int


async def run_sitemap(job: pb.LeasedJob, ctx: JobContext) -> jobs_pb2.JobResult:
    """Read `spec.sitemap.url` (or a root's sitemaps) and return the URLs listed, each once."""
    spec = job.spec.sitemap
    try:
        start = normalize_url(spec.url)
    except InvalidURL as exc:
        raise JobError(f"invalid URL {spec.url!r}: {exc.reason}", error_type="invalid_url", retryable=False) from None
    if ctx.robots is not None:  # as for a page: a lease marked fetch_robots fetches and reports it for the fleet
        with ctx.resources.stages.time("robots"):
            await ctx.robots.check(job, start, ctx, timeout=ctx.settings.scrape.http_timeout)
    limit = min(spec.max_urls if spec.max_urls > 0 else ctx.settings.sitemap.max_urls, MAX_SITEMAP_URLS)
    if ctx.robots is not None:  # the lease may be the host's robots.txt fetcher; a site that
        # disallows its sitemap's URL for us disallows reading it
        with ctx.resources.stages.time("robots"):
            await ctx.robots.check(job, start, ctx, timeout=ctx.settings.scrape.http_timeout)
    reading = _SitemapReading(ctx, start, limit)
    if is_root(start):
        await reading.discover(start)
    else:
        reading.add(start, depth=0, listed_in=start)
    await reading.read_all()
    if reading.found_nothing():
        raise reading.failure()
    result = await ctx.run_blocking(reading.result)
    ctx.log.debug(
        "sitemaps: %d read, %d URL(s), %d error(s)%s",
        len(result.sitemaps),
        len(result.entries),
        len(result.errors),
        ", truncated" if result.truncated else "",
    )
    return jobs_pb2.JobResult(sitemap=result)


class _SitemapReading:
    """The state of one job: what is to be read, what was, and what went wrong."""

    def __init__(self, ctx: JobContext, start: str, limit: int) -> None:
        self._ctx = ctx
        self._settings = ctx.settings.sitemap
        self._start = start
        self._host = host_of(start)
        self._urls = UrlCollector(limit=limit, budget=RESULT_BUDGET_BYTES)
        self._pending: collections.deque[_Pending] = collections.deque()
        self._seen: set[str] = set()
        self._read: list[str] = []
        self._fetches = 0
        self._listings = 0  # url sets and text sitemaps read
        self._elsewhere = 0  # sitemaps found on other hosts: something found, though not read
        self._errors: list[str] = []
        self._errors_unlisted = 0
        self._failures: list[JobError] = []
        self._files_capped = False
        self._host_refused = False  # a 429: no more requests

    def add(self, url: str, *, depth: int, listed_in: str) -> None:
        """Queue a normalized sitemap URL found in `listed_in`, unless it is known or not ours to read."""
        if url in self._seen:
            return
        self._seen.add(url)
        if host_of(url) != self._host:
            self._elsewhere += 1
            self._error(url, "other_host", f"listed in {listed_in}, on another host than the job's: not read")
        elif depth > MAX_INDEX_DEPTH:
            self._error(url, "too_deep", f"listed in {listed_in}: indexes are followed {MAX_INDEX_DEPTH} levels deep")
        else:
            self._pending.append(_Pending(url, depth))

    async def discover(self, root: str) -> None:
        """A root's sitemaps: its robots.txt's Sitemap: lines, then /sitemap.xml."""
        robots = urljoin(root, "/robots.txt")
        try:
            fetched = await self._fetch(robots, MAX_ROBOTS_BYTES)
        except JobError as exc:
            self._failed(robots, exc)
        else:
            if 200 <= fetched.status < 300:
                for value in robots_sitemaps(fetched.text()):
                    try:
                        url = normalize_url(value)
                    except InvalidURL as exc:
                        self._error(value, "invalid_url", f"listed in {robots}: {exc.reason}")
                        continue
                    self.add(url, depth=0, listed_in=robots)
            elif not (400 <= fetched.status < 500 and fetched.status != 429):
                # A 4xx says there is no robots.txt, so no Sitemap: lines; a 5xx may hide some.
                self._checked(robots, fetched)
        self.add(urljoin(root, "/sitemap.xml"), depth=0, listed_in=root)

    async def read_all(self) -> None:
        while self._pending and not self._urls.truncated and not self._host_refused:
            if self._fetches >= self._settings.max_files:
                self._files_capped = True
                first = self._pending[0].url
                self._error(
                    first,
                    "not_read",
                    f"it and {len(self._pending) - 1} more listed sitemap(s) not read: "
                    f"a job reads at most {self._settings.max_files}",
                )
                return
            await self._read_one(self._pending.popleft())
        if self._host_refused and self._pending:
            more = len(self._pending) - 1
            self._error(self._pending[0].url, "not_read", f"it and {more} more: the host answered 429")

    def found_nothing(self) -> bool:
        """Nothing was read and something failed: the job fails rather than report an empty result."""
        return bool(self._failures) and not self._listings and not self._elsewhere

    def failure(self) -> JobError:
        retryable = [f for f in self._failures if f.retryable]
        cause = (retryable or self._failures)[0]
        return JobError(
            "no sitemap could be read: " + "; ".join(self._errors),
            error_type=cause.error_type,
            retryable=cause.retryable,
            retry_after=cause.retry_after,
        )

    def result(self) -> jobs_pb2.SitemapResult:
        """The result, trimmed to the API's bounds (run off the event loop: 50,000 entries take a while)."""
        errors = list(self._errors)
        if self._errors_unlisted:
            errors.append(f"{self._start}: more_errors: {self._errors_unlisted} further error(s) not listed")
        result = jobs_pb2.SitemapResult(
            entries=[_entry(entry) for entry in self._urls.entries],
            sitemaps=self._read,
            errors=errors,
            truncated=self._urls.truncated or self._files_capped,
        )
        limits.fit(result)
        return result

    async def _read_one(self, item: _Pending) -> None:
        self._fetches += 1
        max_bytes = self._settings.max_bytes
        try:
            fetched = await self._fetch(item.url, max_bytes)
        except JobError as exc:
            if exc.error_type == "body_too_large":
                exc = JobError(f"larger than {max_bytes} bytes", error_type="sitemap_too_large", retryable=False)
            self._failed(item.url, exc)
            return
        if not self._checked(item.url, fetched):
            return
        try:
            document = await self._ctx.run_blocking(parse_sitemap, fetched.body, self._urls, max_bytes=max_bytes)
        except SitemapError as exc:
            self._failed(item.url, JobError(exc.message, error_type=exc.error_type, retryable=False))
            return
        self._read.append(item.url)
        if document.kind == "sitemapindex":
            for url in document.sitemaps:
                self.add(url, depth=item.depth + 1, listed_in=item.url)
        else:
            self._listings += 1
        if document.dropped:
            dropped = f"{document.dropped} listed URL(s) dropped: not absolute http(s) URLs"
            self._error(item.url, "invalid_urls", dropped)

    async def _fetch(self, url: str, max_bytes: int) -> FetchedResponse:
        """GET url through the guarded fetcher (raises a classified JobError)."""
        return await self._ctx.resources.fetcher.get(
            url, max_bytes=max_bytes, timeout=self._ctx.settings.scrape.http_timeout
        )

    def _checked(self, url: str, fetched: FetchedResponse) -> bool:
        """Whether the answer's status lets it be read; a failure is recorded."""
        try:
            check_status(fetched.status, {k.lower(): v for k, v in fetched.headers.items()}, fetched.url)
        except JobError as exc:
            self._host_refused = self._host_refused or exc.error_type == "http_429"
            self._failed(url, exc)
            return False
        return True

    def _failed(self, url: str, error: JobError) -> None:
        self._failures.append(error)
        self._error(url, error.error_type, error.message)

    def _error(self, url: str, error_type: str, message: str) -> None:
        if len(self._errors) < MAX_ERRORS:
            self._errors.append(f"{url}: {error_type}: {message}")
        else:
            self._errors_unlisted += 1


def _entry(entry: Entry) -> jobs_pb2.SitemapEntry:
    message = jobs_pb2.SitemapEntry(url=entry.url)
    if entry.lastmod is not None:
        message.lastmod.FromDatetime(entry.lastmod)
    return message
