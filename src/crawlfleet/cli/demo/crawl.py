"""``crawlfleet demo``'s crawl of the demo shop: started from its home page, followed with a live
line (pages discovered, fetched, queued, the depth reached), then summed up: pages by depth, links
left out, what was extracted.

The shop is ours, so the crawl asks for politeness of its own: every worker slot on it at once,
no delay. That is a host policy of the crawl, which goes when the crawl ends.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from crawlfleet.cli.demo.waiting import Waiting
from crawlfleet.cli.render import table, truncate
from crawlfleet.client import Client, CrawlSpec, JobFilter
from crawlfleet.v1 import crawls_pb2, jobs_pb2

# Above the shop's 33 URLs and its depth of 3: the crawl ends because it has found everything,
# not at a limit (the links of pages at the deepest depth allowed count as over the limit).
MAX_PAGES = 200
MAX_DEPTH = 4


def demo_crawl(seed: str, concurrency: int) -> CrawlSpec:
    """The demo's crawl: the shop from its home page, pages rendered in a browser when they need it."""
    return CrawlSpec(
        seeds=[seed],
        max_depth=MAX_DEPTH,
        max_pages=MAX_PAGES,
        render="auto",
        host_concurrency=concurrency,
        host_delay=0,
    )


def progress_line(crawl: crawls_pb2.Crawl) -> str:
    """``25 discovered, 18 fetched, 5 queued, 2 leased, depth 2``: what the crawl has done so far."""
    fetched = crawl.succeeded + crawl.failed
    reached = max((d.depth for d in crawl.depths if d.succeeded + d.failed + d.leased), default=0)
    return (
        f"{crawl.pages_enqueued} discovered, {fetched} fetched, {crawl.queued} queued, {crawl.leased} leased, "
        f"depth {reached} of {crawl.spec.max_depth}"
    )


def follow_crawl(client: Client, crawl_id: int, deadline: float, waiting: Waiting) -> crawls_pb2.Crawl:
    """Looks at the crawl until it ends (or the deadline), showing its progress."""
    while True:
        crawl = client.get_crawl(crawl_id)
        ended = crawl.state != crawls_pb2.CRAWL_STATE_RUNNING
        waiting.show(crawl.succeeded + crawl.failed, crawl.pages_enqueued or None, progress_line(crawl), ended=ended)
        if ended or time.monotonic() >= deadline:
            waiting.finish()
            return crawl
        waiting.pause()


def crawl_jobs(client: Client, crawl: crawls_pb2.Crawl, base: str) -> list[jobs_pb2.Job]:
    """The crawl's page jobs with their results: the shop's jobs made since the crawl started (the
    shop's port is new at each run, so no other run's jobs share its URLs)."""
    since = crawl.created_at.ToDatetime(tzinfo=dt.UTC) - dt.timedelta(seconds=1)
    where = JobFilter(kind="scrape", url_prefix=base, created_after=since)
    return [client.get_job(job.id) for job in client.iter_jobs(where)]


@dataclass(frozen=True, kw_only=True)
class Extracted:
    """What the stored pages yielded beyond their HTML."""

    titles: int
    links: int
    products: int  # pages with a schema.org Product in their JSON-LD
    example: str  # one product as extracted: name, price, SKU


def extracted(jobs: Iterable[jobs_pb2.Job]) -> Extracted:
    pages = [j.result.scrape for j in jobs if j.state == jobs_pb2.JOB_STATE_SUCCEEDED and j.result.HasField("scrape")]
    products = sorted((p for p in (_product(page) for page in pages) if p), key=lambda p: str(p.get("name")))
    example = ""
    if products:
        first, offer = products[0], products[0].get("offers")
        price = f"{offer.get('price')} {offer.get('priceCurrency')}" if isinstance(offer, dict) else "no price"
        example = f"{first.get('name')}, {price}, SKU {first.get('sku')}"
    return Extracted(
        titles=sum(1 for p in pages if p.title),
        links=sum(len(p.links) for p in pages),
        products=len(products),
        example=example,
    )


def _product(page: jobs_pb2.ScrapeResult) -> dict[str, object] | None:
    for block in page.json_ld:
        try:
            data = json.loads(block)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("@type") == "Product":
            return data
    return None


def crawl_lines(crawl: crawls_pb2.Crawl, jobs: list[jobs_pb2.Job], expected_offsite: int | None = None) -> list[str]:
    """The crawl's part of the summary: pages by depth, links not followed, what was extracted."""
    rows = [(d.depth, d.succeeded, d.failed, d.queued + d.leased) for d in crawl.depths]
    lines = [f"  crawl {crawl.id}: {crawl.pages_enqueued} pages discovered from {crawl.spec.seeds[0]}"]
    lines += [
        "  " + line for line in table(["DEPTH", "STORED", "FAILED", "UNFINISHED"], rows, right=range(4)).splitlines()
    ]
    mismatch = ""
    if expected_offsite is not None and crawl.out_of_scope != expected_offsite:
        mismatch = f"  (the demo site expects {expected_offsite})"
    lines.append(f"  links to other sites, not followed: {crawl.out_of_scope}{mismatch}")
    if crawl.over_limit:
        lines.append(f"  links beyond the crawl's limits: {crawl.over_limit}")
    found = extracted(jobs)
    lines.append(
        f"  extracted: {found.titles} titles, {found.links} links, {found.products} products from their JSON-LD"
    )
    if found.example:
        lines.append(f"    e.g. {truncate(found.example, 100)}")
    return lines


def site_lines(target_hits: Counter[str], expected: dict[str, int], browser_pages: int) -> list[str]:
    """What the shop's own request log says of the crawl's page fetches, against what a crawl that
    fetches each page once should have asked for (``expected``: request target -> requests)."""
    requested = sum(target_hits[t] for t in expected)
    off = sorted(t for t, n in expected.items() if target_hits[t] != n)
    rendered = f" (the {browser_pages} JavaScript pages rendered from that one response)" if browser_pages else ""
    verdict = f"each page once{rendered}"
    if off:
        shown = ", ".join(f"{t} x{target_hits[t]}" for t in off[:3])
        verdict = f"{len(off)} page(s) not as expected: {shown}{' ...' if len(off) > 3 else ''}"
    return [f"  the shop's log: {requested} requests for its {len(expected)} page URLs: {verdict}"]
