"""The built-in demo site: a small generated shop to scrape, served on loopback (see ``DemoSite``)."""

from crawlfleet.demo.site import DemoSite
from crawlfleet.demo.urls import DemoExpectations, crawl_seed, demo_urls, expected_outcome

__all__ = ["DemoExpectations", "DemoSite", "crawl_seed", "demo_urls", "expected_outcome"]
