"""Scrapy on the crawl benchmark's site, for comparison: a CrawlSpider that follows every link of
the site from its home page and extracts what a crawlfleet worker does (title, description, text,
links, JSON-LD; with --images, the images through Scrapy's ImagesPipeline with 128 and 512 pixel
thumbnails), exported as JSON lines.

bench/crawl.py runs it (--scrapy-python) on the site it serves, between its own rounds. Scrapy is
not a dependency of crawlfleet: install it in a virtualenv of its own and point at its Python:

    python3 -m venv /tmp/scrapy-venv && /tmp/scrapy-venv/bin/pip install scrapy pillow
    .venv/bin/python bench/crawl.py --pages 5000 --rounds 3 --scrapy-python /tmp/scrapy-venv/bin/python

On its own, against any site:

    /tmp/scrapy-venv/bin/python bench/scrapy_crawl.py --start http://127.0.0.1:8000/ --concurrency 16

The settings match crawlfleet's benchmark: CONCURRENT_REQUESTS and CONCURRENT_REQUESTS_PER_DOMAIN
are the fleet's slots, no delay, no robots.txt, no AutoThrottle, no depth limit. The time is from
the spider's opening to its last item; the last line of output is one JSON object.
"""

# ruff: noqa: E402 (sys.path is fixed before the imports, see below)

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/scrapy_crawl.py` puts bench/ first on sys.path, where bench/queue.py would shadow
# the stdlib `queue` that Twisted imports: drop that entry (nothing of this repository is used).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from scrapy import signals
from scrapy.crawler import CrawlerProcess
from scrapy.http import Response
from scrapy.linkextractors import LinkExtractor
from scrapy.spiders import CrawlSpider, Rule


class SiteSpider(CrawlSpider):  # type: ignore[misc]
    name = "site"

    def __init__(self, start: str, images: bool, **kwargs: Any) -> None:
        self.start_urls = [start]
        self.allowed_domains = [urlsplit(start).hostname or ""]
        self.images = images
        # Rules are compiled by CrawlSpider.__init__: set them first.
        self.rules = (Rule(LinkExtractor(), callback="parse_page", follow=True),)
        super().__init__(**kwargs)

    def parse_start_url(self, response: Response, **kwargs: Any) -> Iterator[dict[str, Any]]:
        return self.parse_page(response)

    def parse_page(self, response: Response) -> Iterator[dict[str, Any]]:
        yield page_item(response, images=self.images)


def page_item(response: Response, *, images: bool) -> dict[str, Any]:
    """What a crawlfleet worker extracts of a page (bench/scrapy_scrape.py uses it too)."""
    item: dict[str, Any] = {
        "url": response.url,
        "status": response.status,
        "title": response.css("title::text").get(""),
        "description": response.css("meta[name=description]::attr(content)").get(""),
        "text": " ".join(response.css("main ::text").getall()).strip(),
        "links": [response.urljoin(href) for href in response.css("a::attr(href)").getall()],
        "json_ld": [json.loads(block) for block in response.css("script[type='application/ld+json']::text").getall()],
    }
    if images:
        # <img> and og:image, deduplicated in page order, as the worker lists them.
        sources = (
            response.css("img::attr(src)").getall() + response.css("meta[property='og:image']::attr(content)").getall()
        )
        item["image_urls"] = list(dict.fromkeys(response.urljoin(src) for src in sources))
    return item


def scrapy_settings(*, concurrency: int, out: Path, images: bool) -> dict[str, Any]:
    """The settings of crawlfleet's benchmarks: no delay, robots.txt, AutoThrottle or depth limit;
    with images, ImagesPipeline with thumbnails of the sizes the worker makes (128 and 512)."""
    settings: dict[str, Any] = {
        "ROBOTSTXT_OBEY": False,
        "CONCURRENT_REQUESTS": concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
        "DOWNLOAD_DELAY": 0,
        "AUTOTHROTTLE_ENABLED": False,
        "DEPTH_LIMIT": 0,
        "TELNETCONSOLE_ENABLED": False,
        "LOG_LEVEL": "INFO",
        "LOG_FILE": str(out / "scrapy.log"),
        "FEEDS": {str(out / "items.jsonl"): {"format": "jsonlines"}},
    }
    if images:
        settings |= {
            "ITEM_PIPELINES": {"scrapy.pipelines.images.ImagesPipeline": 1},
            "IMAGES_STORE": str(out / "images"),
            "IMAGES_THUMBS": {"128": (128, 128), "512": (512, 512)},
        }
    return settings


class Timing:
    """The spider's opening, its items (distinct pages: Scrapy fetches its start URL once more when
    pages link to it, since start requests skip the duplicate filter) and the last one's time."""

    def __init__(self) -> None:
        self.opened = 0.0
        self.last_item = 0.0
        self.items = 0
        self.urls: set[str] = set()
        self.images = 0

    def spider_opened(self) -> None:
        self.opened = time.perf_counter()

    def item_scraped(self, item: dict[str, Any]) -> None:
        self.items += 1
        self.urls.add(item["url"])
        self.images += len(item.get("images", []))
        self.last_item = time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", required=True, help="the home page")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (the fleet's slots)")
    parser.add_argument("--images", action="store_true", help="download images and make thumbnails")
    parser.add_argument("--out", type=Path, help="directory for items, images and the log (default: a new one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="scrapy-crawl-"))
    out.mkdir(parents=True, exist_ok=True)
    settings = scrapy_settings(concurrency=args.concurrency, out=out, images=args.images)
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(SiteSpider)
    timing = Timing()
    crawler.signals.connect(timing.spider_opened, signal=signals.spider_opened)
    crawler.signals.connect(timing.item_scraped, signal=signals.item_scraped)
    process.crawl(crawler, start=args.start, images=args.images)
    process.start()
    stats = crawler.stats.get_stats() if crawler.stats else {}
    span = timing.last_item - timing.opened
    pages = len(timing.urls)
    result = {
        "pages": pages,
        "items": timing.items,
        "span_s": round(span, 3),
        "pages_per_s": round(pages / span, 2) if span > 0 else None,
        "images": timing.images,
        "images_per_s": round(timing.images / span, 2) if span > 0 else None,
        "responses": stats.get("response_received_count", 0),
        "requests": stats.get("downloader/request_count", 0),
        "elapsed_s": stats.get("elapsed_time_seconds"),
        "finish_reason": stats.get("finish_reason"),
        "out": str(out),
    }
    print(json.dumps(result), flush=True)
    if not timing.items:
        sys.exit(f"no items: see {out / 'scrapy.log'}")


if __name__ == "__main__":
    main()
