"""What the demo enqueues, and what a run over it should end with (computed from the catalogue, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from crawlfleet.demo.catalogue import (
    ABOUT_OFFSITE_LINKS,
    BROKEN_PATH,
    HOME_OFFSITE_LINKS,
    PAGES_PER_CATEGORY,
    Catalogue,
    build_catalogue,
)


def page_paths(catalogue: Catalogue) -> list[str]:
    """Every HTML page the site serves with 200: home, listings, products, about, in that order."""
    listings = [c.page_path(n) for c in catalogue.categories for n in range(1, PAGES_PER_CATEGORY + 1)]
    return ["/", *listings, *(p.path for p in catalogue.products), "/about"]


def crawl_seed(base: str) -> str:
    """Where the demo's crawl starts: the shop's home page."""
    return base.rstrip("/") + "/"


def page_requests(catalogue: Catalogue | None = None) -> dict[str, int]:
    """Request target -> how many requests a run that fetches each page once makes of it with
    render=auto: one, also for a page built by JavaScript (the browser is served the fetched response)."""
    catalogue = catalogue or build_catalogue()
    requests = {path: 1 for path in page_paths(catalogue)}
    requests[BROKEN_PATH] = 1
    return requests


def demo_urls(base: str, catalogue: Catalogue | None = None) -> list[str]:
    """The URLs the demo enqueues: every page, plus the product page a listing links to but that is gone (404)."""
    paths = page_paths(catalogue or build_catalogue())
    paths.insert(paths.index("/about"), BROKEN_PATH)
    return [base.rstrip("/") + path for path in paths]


@dataclass(frozen=True, kw_only=True)
class DemoExpectations:
    """The outcome of scraping ``demo_urls`` with ``render=auto`` (the worker's defaults otherwise)."""

    jobs: int  # URLs enqueued
    succeeded: int  # pages stored
    dead: int  # the 404 page: a permanent failure, dead after its first attempt
    rendered_in_browser: int  # JavaScript product pages, escalated by render=auto
    image_results: int  # image references processed, over all stored pages (one per URL per page)
    image_failures: int  # the corrupt product image: error_type "corrupt_image"
    distinct_images: int  # distinct SHA-256 among the processed images (what the store keeps)
    image_urls: int  # distinct image URLs across the site
    # A crawl from the home page: the depth of its deepest pages, and the links to other sites it
    # leaves out (per page that offers them).
    crawl_depth: int
    offsite_links: int


def expected_outcome(catalogue: Catalogue | None = None) -> DemoExpectations:
    catalogue = catalogue or build_catalogue()
    pages = page_paths(catalogue)
    products = catalogue.products
    # Each product page shows its image once (<img> and og:image are the same URL); the home page shows
    # the featured products' images again.
    image_results = len(products) + len(catalogue.featured)
    failures = sum(p.corrupt_image for p in products) + sum(p.corrupt_image for p in catalogue.featured)
    distinct = {p.picture_owner for p in products if not p.corrupt_image}
    return DemoExpectations(
        jobs=len(pages) + 1,
        succeeded=len(pages),
        dead=1,
        rendered_in_browser=sum(p.js_rendered for p in products),
        image_results=image_results,
        image_failures=failures,
        distinct_images=len(distinct),
        image_urls=len(products),
        # home 0; categories, featured products, about 1; second listing pages and the other
        # products of the first 2; the products of the second listing pages and the gone one 3.
        crawl_depth=3,
        offsite_links=len(HOME_OFFSITE_LINKS) + len(ABOUT_OFFSITE_LINKS),
    )
