"""The demo shop served over HTTP on loopback: ``DemoSite().start()`` returns its base URL.

Every page and image is rendered once at start (images take a moment: they are drawn with Pillow), then
served from memory by a ``SiteServer`` in a daemon thread. Unknown paths get an HTML 404 page.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from types import TracebackType
from urllib.parse import urlsplit

from crawlfleet.demo import pages
from crawlfleet.demo.catalogue import PAGES_PER_CATEGORY, Catalogue, build_catalogue
from crawlfleet.demo.images import render_images
from crawlfleet.demo.serving import Reply, SiteServer
from crawlfleet.demo.urls import DemoExpectations, demo_urls, expected_outcome, page_paths

HTML = "text/html; charset=utf-8"
LAST_MODIFIED = "Mon, 03 Jun 2024 09:00:00 GMT"  # fixed, like everything else here
Resource = tuple[int, str, bytes]  # status, content type, body


def render_site(base: str, catalogue: Catalogue) -> dict[str, Resource]:
    """Path (with the query, for listing pages) -> what the site serves there."""
    site: dict[str, Resource] = {
        "/": (200, HTML, pages.home(base, catalogue)),
        "/about": (200, HTML, pages.about(base, catalogue)),
        "/robots.txt": (200, "text/plain; charset=utf-8", robots(base).encode()),
        "/sitemap.xml": (200, "application/xml", sitemap(base, catalogue).encode()),
    }
    for category in catalogue.categories:
        for page in range(1, PAGES_PER_CATEGORY + 1):
            site[category.page_path(page)] = (200, HTML, pages.listing(base, catalogue, category, page))
    for product in catalogue.products:
        site[product.path] = (200, HTML, pages.product_page(base, catalogue, product))
    for path, (content_type, data) in render_images(catalogue).items():
        site[path] = (200, content_type, data)
    return site


def robots(base: str) -> str:
    return f"User-agent: *\nDisallow: /cart\nDisallow: /checkout\nAllow: /\n\nSitemap: {base}/sitemap.xml\n"


def sitemap(base: str, catalogue: Catalogue) -> str:
    urls = "".join(f"<url><loc>{base}{path.replace('&', '&amp;')}</loc></url>" for path in page_paths(catalogue))
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'


class DemoSite:
    """The demo shop. ``start()`` serves it and returns the base URL; ``stop()`` shuts it down."""

    def __init__(self, catalogue: Catalogue | None = None) -> None:
        self.catalogue = catalogue or build_catalogue()
        self._resources: dict[str, Resource] = {}
        self._server = SiteServer(self._reply, name="demo-site")

    @property
    def base(self) -> str:
        return self._server.base

    @property
    def hits(self) -> Counter[str]:
        """Path -> requests served."""
        return self._server.hits

    @property
    def target_hits(self) -> Counter[str]:
        """Request target (path and query: listing pages differ by their query) -> requests served."""
        return self._server.target_hits

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Renders the site, serves it on ``host:port`` (0: any free port) and returns its base URL."""
        if not self._resources:
            # Pages hold absolute URLs, so they are rendered once the port is known: before this returns
            # the base URL, so no client can ask for one sooner.
            base = self._server.start(host, port)
            self._resources = render_site(base, self.catalogue)
        return self.base

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> DemoSite:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def urls(self) -> list[str]:
        """The URLs the demo enqueues (see ``demo_urls``)."""
        return demo_urls(self.base, self.catalogue)

    def expected(self) -> DemoExpectations:
        return expected_outcome(self.catalogue)

    def resolve(self, target: str) -> Resource:
        """What a GET of ``target`` (path and query) returns; a listing ignores an unknown query, as shops do."""
        parts = urlsplit(target)
        path = parts.path or "/"
        found = self._resources.get(f"{path}?{parts.query}" if parts.query else path) or self._resources.get(path)
        if found is None:
            return 404, HTML, pages.not_found(self.base, self.catalogue, path)
        return found

    def _reply(self, target: str) -> Reply:
        status, content_type, body = self.resolve(target)
        headers = {"Content-Type": content_type}
        if status == 200:
            headers["ETag"] = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
            headers["Last-Modified"] = LAST_MODIFIED
            headers["Cache-Control"] = "public, max-age=3600"
        return Reply(status, headers, body)
