"""Scrapy on the scrape benchmark's pages, for comparison: a Spider given the same list of product
pages that bench/scrape.py enqueues, extracting what a crawlfleet worker does, with the images of
each page (<img> and og:image) through Scrapy's ImagesPipeline and 128 and 512 pixel thumbnails.

bench/scrape.py runs it (--scrapy-python) between its own rounds. Scrapy is not a dependency of
crawlfleet: install it in a virtualenv of its own (see bench/scrapy_crawl.py). On its own:

    /tmp/scrapy-venv/bin/python bench/scrapy_scrape.py --base http://127.0.0.1:8000 --pages 300

The time is from the spider's opening to its last item; the last line of output is one JSON object.
Scrapy's image work differs from the worker's: it writes the full image (a JPEG's original bytes,
anything else re-encoded as JPEG) and JPEG thumbnails to disk and keeps an MD5 checksum; the worker
keeps a SHA-256, a perceptual hash and WebP thumbnails, and its results go to PostgreSQL.
"""

# ruff: noqa: E402 (sys.path is fixed before the imports, see below)

from __future__ import annotations

import sys
from pathlib import Path

# As in bench/scrapy_crawl.py: bench/ first on sys.path would shadow the stdlib `queue`. The
# repository's root goes there instead, for bench.scrapy_crawl (which needs nothing of crawlfleet).
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [str(_BENCH.parent) if Path(p or ".").resolve() == _BENCH else p for p in sys.path]

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from scrapy import Spider, signals
from scrapy.crawler import CrawlerProcess
from scrapy.http import Response

from bench.scrapy_crawl import page_item, scrapy_settings


class PagesSpider(Spider):  # type: ignore[misc]
    name = "pages"

    def __init__(self, urls: list[str], **kwargs: Any) -> None:
        self.start_urls = urls
        super().__init__(**kwargs)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[dict[str, Any]]:
        yield page_item(response, images=True)


class Timing:
    """The spider's opening, its items and the images they carry, and the last item's time."""

    def __init__(self) -> None:
        self.opened = 0.0
        self.last_item = 0.0
        self.items = 0
        self.images = 0

    def spider_opened(self) -> None:
        self.opened = time.perf_counter()

    def item_scraped(self, item: dict[str, Any]) -> None:
        self.items += 1
        self.images += len(item.get("images", []))
        self.last_item = time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the site's http://host:port")
    parser.add_argument("--first", type=int, default=0, help="first product page")
    parser.add_argument("--pages", type=int, default=300, help="product pages from --first")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (the fleet's slots)")
    parser.add_argument("--out", type=Path, help="directory for items, images and the log (default: a new one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="scrapy-scrape-"))
    out.mkdir(parents=True, exist_ok=True)
    urls = [f"{args.base}/product/{i}" for i in range(args.first, args.first + args.pages)]
    process = CrawlerProcess(scrapy_settings(concurrency=args.concurrency, out=out, images=True))
    crawler = process.create_crawler(PagesSpider)
    timing = Timing()
    crawler.signals.connect(timing.spider_opened, signal=signals.spider_opened)
    crawler.signals.connect(timing.item_scraped, signal=signals.item_scraped)
    process.crawl(crawler, urls=urls)
    process.start()
    stats = crawler.stats.get_stats() if crawler.stats else {}
    span = timing.last_item - timing.opened
    result = {
        "pages": timing.items,
        "span_s": round(span, 3),
        "pages_per_s": round(timing.items / span, 2) if span > 0 else None,
        "images": timing.images,
        "images_per_s": round(timing.images / span, 2) if span > 0 else None,
        "image_downloads": stats.get("file_status_count/downloaded", 0),
        "requests": stats.get("downloader/request_count", 0),
        "finish_reason": stats.get("finish_reason"),
        "out": str(out),
    }
    print(json.dumps(result), flush=True)
    if not timing.items:
        sys.exit(f"no items: see {out / 'scrapy.log'}")


if __name__ == "__main__":
    main()
