"""Linked sites for crawl tests: pages with a known link graph, served on loopback, each site with
its own log of every request it answered.

A page is added with the links it has as written in its HTML (relative, root-relative, absolute,
under a `<base href>`, repeated, with fragments) together with the URL each one means. The graph
of meant URLs is the truth a test compares a crawl with (`reachable`): the site never asks the
crawler how it resolved anything. Any request for a target the site does not have is answered 404
and logged like the others, so a link resolved wrongly shows up in the log.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from crawlfleet.demo.serving import Reply, SiteServer

GATE_TIMEOUT = 60.0  # a held request is answered after this long even if nobody releases it

# (href as written in the page, the absolute URL it means)
Href = tuple[str, str]
Graph = dict[str, list[str]]


def html(title: str, hrefs: Iterable[str], head: str = "") -> bytes:
    anchors = "".join(f"<li><a href='{href}'>{title} link {n}</a></li>" for n, href in enumerate(hrefs))
    return (
        f"<!doctype html><html lang=en><head><title>{title}</title>{head}</head>"
        f"<body><h1>{title}</h1><ul>{anchors}</ul></body></html>"
    ).encode()


@dataclass
class LinkedSite:
    """One loopback server: static pages, redirects and generated pages by request target."""

    host: str = "127.0.0.1"
    pages: dict[str, bytes] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    # Path (no query) -> a page made from the query string, for endless link traps.
    generated: dict[str, Callable[[str], bytes]] = field(default_factory=dict)
    # Targets whose requests are held until `release()` (a slow page a worker is in the middle of).
    held: set[str] = field(default_factory=set)
    # The absolute URLs each of this site's pages links to (what the hrefs mean).
    graph: Graph = field(default_factory=dict)
    server: SiteServer = field(init=False)
    _log: list[str] = field(default_factory=list, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _gate: threading.Event = field(default_factory=threading.Event, init=False)

    def __post_init__(self) -> None:
        self.server = SiteServer(self._reply, name=f"linked-site-{self.host}")

    def start(self) -> LinkedSite:
        self.server.start(self.host)
        return self

    def stop(self) -> None:
        self._gate.set()
        self.server.stop()

    @property
    def base(self) -> str:
        return self.server.base

    def url(self, target: str) -> str:
        return self.base + target

    @property
    def log(self) -> list[str]:
        """Every request target answered so far (path and query), in order."""
        with self._lock:
            return list(self._log)

    def fetched(self) -> Counter[str]:
        """Requests per absolute URL."""
        return Counter(self.url(target) for target in self.log)

    def add(self, target: str, title: str, hrefs: Iterable[Href], head: str = "") -> None:
        """A page at `target` with links as written (first) meaning URLs (second)."""
        pairs = list(hrefs)
        self.pages[target] = html(title, (written for written, _ in pairs), head)
        self.graph[self.url(target)] = [meant for _, meant in pairs]

    def redirect(self, target: str, location: str) -> None:
        self.redirects[target] = location

    def release(self) -> None:
        self._gate.set()

    def _reply(self, target: str) -> Reply:
        with self._lock:
            self._log.append(target)
        if target in self.held:
            self._gate.wait(GATE_TIMEOUT)
        if target in self.redirects:
            return Reply(302, {"Location": self.redirects[target]}, b"")
        body = self.pages.get(target)
        path, _, query = target.partition("?")
        if body is None and path in self.generated:
            body = self.generated[path](query)
        if body is None:
            return Reply(404, {"Content-Type": "text/html"}, b"<!doctype html><title>not found</title>")
        return Reply(200, {"Content-Type": "text/html; charset=utf-8"}, body)


def reachable(
    seeds: Iterable[str], graph: Mapping[str, list[str]], *, max_depth: int, follows: Callable[[str], bool]
) -> dict[str, int]:
    """URL -> shortest link distance from a seed, for the URLs a crawl may take: `follows` them
    (scope and patterns), at most max_depth links away. Breadth first over the meant links."""
    found = {seed: 0 for seed in seeds if follows(seed)}
    frontier = list(found)
    for depth in range(1, max_depth + 1):
        following: list[str] = []
        for url in frontier:
            for link in graph.get(url, []):
                if link not in found and follows(link):
                    found[link] = depth
                    following.append(link)
        frontier = following
    return found


def shop(site: LinkedSite, *, categories: int = 6, products: int = 20) -> None:
    """A shop on `site`, with every kind of link spelling a crawler meets:

    - `/` (depth 0): each category (relative `c/k`, once more root-relative, with a fragment and
      absolute: repeated links), and the first product of each category (featured, depth 1);
    - `/c/k` (depth 1): under `<base href="/p/">`, its products as bare `k-i` (they resolve against
      the base, not the page), home, and the next category as `../c/k+1`;
    - `/p/k-i` (depth 1 or 2): home as `../`, its category, related products in this and the next
      category (a repeated link too), its reviews as `k-i/reviews`;
    - `/p/k-i/reviews` (depth 2 or 3): its product as `../k-i`, the next page as `reviews/2`;
    - `/p/k-i/reviews/2` (depth 3 or 4): back to the reviews, `./` (its own directory: /p/k-i/reviews/).

    `/p/k-i/reviews/` (trailing slash) is a page too: one more distinct URL at the bottom.
    """
    home = site.url("/")
    hrefs: list[Href] = []
    for k in range(categories):
        category = site.url(f"/c/{k}")
        hrefs += [(f"c/{k}", category), (f"/c/{k}", category), (f"/c/{k}#top", category), (category, category)]
    hrefs += [(f"/p/{k}-0", site.url(f"/p/{k}-0")) for k in range(categories)]
    site.add("/", "Home", hrefs)
    for k in range(categories):
        following = (k + 1) % categories
        hrefs = [(f"{k}-{i}", site.url(f"/p/{k}-{i}")) for i in range(products)]
        hrefs += [("/", home), (f"../c/{following}", site.url(f"/c/{following}"))]
        site.add(f"/c/{k}", f"Category {k}", hrefs, head="<base href='/p/'>")
        for i in range(products):
            product = f"/p/{k}-{i}"
            related = site.url(f"/p/{k}-{(i + 1) % products}")
            hrefs = [("../", home), (f"../c/{k}", site.url(f"/c/{k}"))]
            hrefs += [(f"{k}-{(i + 1) % products}", related), (f"./{k}-{(i + 1) % products}", related)]
            hrefs += [(f"../p/{following}-{i}", site.url(f"/p/{following}-{i}"))]
            hrefs += [(f"{k}-{i}/reviews", site.url(f"{product}/reviews"))]
            site.add(product, f"Product {k}-{i}", hrefs)
            reviews = site.url(f"{product}/reviews")
            site.add(
                f"{product}/reviews",
                f"Reviews {k}-{i}",
                [(f"../{k}-{i}", site.url(product)), ("reviews/2", site.url(f"{product}/reviews/2"))],
            )
            site.add(
                f"{product}/reviews/2",
                f"Reviews {k}-{i} page 2",
                [("../reviews", reviews), ("./", site.url(f"{product}/reviews/"))],
            )
            site.add(f"{product}/reviews/", f"Reviews {k}-{i} index", [("/", home)])
