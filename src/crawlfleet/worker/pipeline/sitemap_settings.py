"""Settings of sitemap jobs: part of WorkerSettings, with their flags."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from crawlfleet.common import result_limits
from crawlfleet.common.flags import positive_int

# sitemaps.org: a sitemap lists at most 50,000 URLs and is at most 50 MiB uncompressed.
MAX_SITEMAP_URLS = result_limits.MAX_SITEMAP_ENTRIES
MAX_SITEMAP_BYTES = 50 * 1024 * 1024
# SitemapResult.sitemaps holds at most 1,000 entries (common/limits.py): one per sitemap read.
MAX_SITEMAP_FILES = 1000
DEFAULT_MAX_FILES = 50
# An index may list indexes (sitemaps.org forbids it; sites do it): read two levels of them, no more.
MAX_INDEX_DEPTH = 2
# Encoded bytes of a result's entries: 50,000 URLs of a usual length fit, and the result stays far
# inside the coordinator's cap (result_limits.MAX_RESULT_BYTES), however long the URLs.
RESULT_BUDGET_BYTES = 8 * 1024 * 1024
# RFC 9309 asks crawlers to read at least 500 KiB of a robots.txt.
MAX_ROBOTS_BYTES = 512 * 1024

AddFlag = Callable[[str, object, Callable[[str], object], str], None]


@dataclass(frozen=True, kw_only=True)
class SitemapSettings:
    # URLs a job reports when its spec sets no max_urls.
    max_urls: int = MAX_SITEMAP_URLS
    # One sitemap's bytes after decompression (its transfer and its gzip alike).
    max_bytes: int = MAX_SITEMAP_BYTES
    # Sitemaps one job reads, indexes included.
    max_files: int = DEFAULT_MAX_FILES


def add_sitemap_flags(add: AddFlag) -> None:
    """Declare the sitemap flags with the worker's `add` (flag, default, type, help)."""
    add(
        "--sitemap-max-urls",
        str(MAX_SITEMAP_URLS),
        _at_most(MAX_SITEMAP_URLS),
        f"URLs a sitemap job reports when its spec sets no max_urls (at most {MAX_SITEMAP_URLS})",
    )
    add(
        "--sitemap-max-bytes",
        str(MAX_SITEMAP_BYTES),
        _at_most(MAX_SITEMAP_BYTES),
        f"largest sitemap, after decompression (at most {MAX_SITEMAP_BYTES}, as sitemaps.org allows)",
    )
    add(
        "--sitemap-max-files",
        str(DEFAULT_MAX_FILES),
        _at_most(MAX_SITEMAP_FILES),
        f"sitemaps one sitemap job reads, indexes included (at most {MAX_SITEMAP_FILES})",
    )


def sitemap_settings_from(ns: argparse.Namespace) -> SitemapSettings:
    return SitemapSettings(max_urls=ns.sitemap_max_urls, max_bytes=ns.sitemap_max_bytes, max_files=ns.sitemap_max_files)


def _at_most(cap: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = positive_int(text)
        if value > cap:
            raise argparse.ArgumentTypeError(f"must be at most {cap}")
        return value

    return parse
