"""Settings of the scrape pipeline (fetch, browser, images): part of WorkerSettings."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from crawlfleet.common import result_limits
from crawlfleet.common.flags import (
    comma_list,
    non_negative_float,
    non_negative_int,
    parse_bool,
    positive_float,
    positive_int,
)

DEFAULT_HTTP_TIMEOUT = 20.0
# Redirects one request may follow, over HTTP and in the browser alike (a limit, not a flag).
MAX_REDIRECTS = 10
DEFAULT_USER_AGENT = "crawlfleet/0.1 (+https://github.com/crawlfleet)"
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
DEFAULT_BROWSER_PAGES_PER_BROWSER = 100
DEFAULT_BROWSER_SETTLE_TIMEOUT = 2.0
# The image stage downloads a page's images itself: the browser loading them too is wasted work.
DEFAULT_BROWSER_BLOCK = ("font", "media", "image")
DEFAULT_BROWSER_CONTEXT_REUSE = 20
DEFAULT_MAX_IMAGES = 20
DEFAULT_IMAGE_CONCURRENCY = 4
DEFAULT_MAX_IMAGE_BYTES = 15 * 1024 * 1024
DEFAULT_IMAGE_TIMEOUT = 15.0
DEFAULT_IMAGE_MAX_PIXELS = 40_000_000
# Processed images a worker keeps (thumbnail bytes), and the longest it reuses one without asking
# its server: the bound on how stale an image in a result can be.
DEFAULT_IMAGE_CACHE_BYTES = 64 * 1024 * 1024
DEFAULT_IMAGE_CACHE_TTL = 600.0
DEFAULT_THUMBNAIL_SIZES = (128, 512)
DEFAULT_THUMBNAIL_FORMAT = "WEBP"
# Thumbnail bytes one result may carry: keeps every Complete call far under the message limit.
DEFAULT_MAX_RESULT_BYTES = 8 * 1024 * 1024
THUMBNAIL_FORMATS = ("WEBP", "JPEG", "PNG")

AddFlag = Callable[[str, object, Callable[[str], object], str], None]


@dataclass(frozen=True, kw_only=True)
class ScrapeSettings:
    http_timeout: float = DEFAULT_HTTP_TIMEOUT
    user_agent: str = DEFAULT_USER_AGENT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Let fetches reach loopback (tests, the demo) and these networks (CIDR).
    allow_loopback: bool = False
    egress_allow: tuple[str, ...] = ()
    browser_executable: str | None = None
    browser_pages_per_browser: int = DEFAULT_BROWSER_PAGES_PER_BROWSER
    browser_settle_timeout: float = DEFAULT_BROWSER_SETTLE_TIMEOUT
    browser_block: tuple[str, ...] = DEFAULT_BROWSER_BLOCK
    browser_context_reuse: int = DEFAULT_BROWSER_CONTEXT_REUSE
    browser_blank_page: bool = True
    max_images: int = DEFAULT_MAX_IMAGES
    image_concurrency: int = DEFAULT_IMAGE_CONCURRENCY
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    image_timeout: float = DEFAULT_IMAGE_TIMEOUT
    image_max_pixels: int = DEFAULT_IMAGE_MAX_PIXELS
    image_cache_bytes: int = DEFAULT_IMAGE_CACHE_BYTES
    image_cache_ttl: float = DEFAULT_IMAGE_CACHE_TTL
    thumbnail_sizes: tuple[int, ...] = DEFAULT_THUMBNAIL_SIZES
    thumbnail_format: str = DEFAULT_THUMBNAIL_FORMAT
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES


def add_scrape_flags(add: AddFlag) -> None:
    """Declare the pipeline's flags with the worker's `add` (flag, default, type, help)."""
    add("--http-timeout", str(DEFAULT_HTTP_TIMEOUT), positive_float, "default total fetch timeout, seconds")
    add("--user-agent", DEFAULT_USER_AGENT, str, "User-Agent of fetches")
    add("--max-body-bytes", str(DEFAULT_MAX_BODY_BYTES), positive_int, "largest page body, after decompression")
    add("--egress-allow", "", _cidrs, "comma-separated networks fetches may reach despite the egress guard")
    add("--browser-executable", "", str, "Chromium to use (default: Playwright's, else the system's)")
    add(
        "--browser-pages-per-browser",
        str(DEFAULT_BROWSER_PAGES_PER_BROWSER),
        positive_int,
        "restart the browser after this many pages",
    )
    add(
        "--browser-settle-timeout",
        str(DEFAULT_BROWSER_SETTLE_TIMEOUT),
        positive_float,
        "seconds a rendered page may take to go network-idle after load",
    )
    add(
        "--browser-block",
        ",".join(DEFAULT_BROWSER_BLOCK),
        comma_list,
        "resource types the browser does not load (Playwright's: image, font, media, stylesheet, script, ...)",
    )
    add(
        "--browser-context-reuse",
        str(DEFAULT_BROWSER_CONTEXT_REUSE),
        positive_int,
        "renders one browser context serves in turn, cleared of cookies and storage between them (1: a new one each)",
    )
    add(
        "--browser-blank-page",
        "on",
        parse_bool,
        "keep a blank page open in each reused context: about 0.2-0.8 s less Chromium CPU per render, "
        "about twice Chromium's memory (off: the other way round)",
    )
    add(
        "--max-images",
        str(DEFAULT_MAX_IMAGES),
        _at_most(non_negative_int, result_limits.MAX_IMAGES),
        f"images processed per page (at most {result_limits.MAX_IMAGES}, the coordinator's cap)",
    )
    add("--image-concurrency", str(DEFAULT_IMAGE_CONCURRENCY), positive_int, "image downloads at once per job")
    add("--max-image-bytes", str(DEFAULT_MAX_IMAGE_BYTES), positive_int, "largest image downloaded")
    add("--image-timeout", str(DEFAULT_IMAGE_TIMEOUT), positive_float, "seconds one image download may take")
    add(
        "--image-max-pixels",
        str(DEFAULT_IMAGE_MAX_PIXELS),
        positive_int,
        "images with more pixels are refused as decompression bombs",
    )
    add(
        "--image-cache-bytes",
        str(DEFAULT_IMAGE_CACHE_BYTES),
        non_negative_int,
        "thumbnail bytes of processed images kept for reuse by URL and content (0: no image cache)",
    )
    add(
        "--image-cache-ttl",
        str(DEFAULT_IMAGE_CACHE_TTL),
        non_negative_float,
        "longest an image is reused without asking its server again, seconds (its Cache-Control may say less)",
    )
    add(
        "--thumbnail-sizes",
        ",".join(map(str, DEFAULT_THUMBNAIL_SIZES)),
        _sizes,
        "longer-side bounds of the thumbnails made",
    )
    add("--thumbnail-format", DEFAULT_THUMBNAIL_FORMAT, _thumbnail_format, "WEBP, JPEG or PNG")
    add(
        "--max-result-bytes",
        str(DEFAULT_MAX_RESULT_BYTES),
        _at_most(positive_int, result_limits.MAX_THUMBNAIL_BYTES),
        f"thumbnail bytes one result may carry (at most {result_limits.MAX_THUMBNAIL_BYTES}, the coordinator's cap)",
    )


def scrape_settings_from(ns: argparse.Namespace, *, allow_loopback: bool) -> ScrapeSettings:
    return ScrapeSettings(
        http_timeout=ns.http_timeout,
        user_agent=ns.user_agent,
        max_body_bytes=ns.max_body_bytes,
        allow_loopback=allow_loopback,
        egress_allow=ns.egress_allow,
        browser_executable=ns.browser_executable or None,
        browser_pages_per_browser=ns.browser_pages_per_browser,
        browser_settle_timeout=ns.browser_settle_timeout,
        browser_block=ns.browser_block,
        browser_context_reuse=ns.browser_context_reuse,
        browser_blank_page=ns.browser_blank_page,
        max_images=ns.max_images,
        image_concurrency=ns.image_concurrency,
        max_image_bytes=ns.max_image_bytes,
        image_timeout=ns.image_timeout,
        image_max_pixels=ns.image_max_pixels,
        image_cache_bytes=ns.image_cache_bytes,
        image_cache_ttl=ns.image_cache_ttl,
        thumbnail_sizes=ns.thumbnail_sizes,
        thumbnail_format=ns.thumbnail_format,
        max_result_bytes=ns.max_result_bytes,
    )


def _at_most(convert: Callable[[str], int], cap: int) -> Callable[[str], int]:
    """``convert``, refusing values past the coordinator's cap (its results would be refused)."""

    def parse(text: str) -> int:
        value = convert(text)
        if value > cap:
            raise argparse.ArgumentTypeError(f"must be at most {cap}: the coordinator refuses larger results")
        return value

    return parse


def _cidrs(text: str) -> tuple[str, ...]:
    import ipaddress

    networks = comma_list(text)
    for cidr in networks:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not a network: {cidr!r}") from exc
    return networks


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(w) for w in comma_list(text)}, reverse=True))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of sizes: {text!r}") from exc
    if not sizes or any(not 8 <= s <= 4096 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be between 8 and 4096 pixels")
    return sizes


def _thumbnail_format(text: str) -> str:
    value = text.upper()
    if value not in THUMBNAIL_FORMATS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(THUMBNAIL_FORMATS)}")
    return value
