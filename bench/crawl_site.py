"""The crawl benchmark's site: N linked pages (a home page, categories, products) and optionally K
images per product drawn from a pool of generated images, served on loopback.

Every link leads to a page of the site and every page is reachable from the home page within two
links, so a crawl of it from `/` with a limit of N pages fetches the whole site, whichever crawler
runs it and in whatever order:

- `/` links to every category;
- `/c/<k>` (about 100 of them per 10,000 pages) links to home, its neighbours and its products;
- `/p/<i>` links to home, its category and 20 other products drawn at random (cross links: most
  pages are linked from many others).

Pages are generated once, up front and from a seed, so serving costs next to nothing and every
run sees the same bytes.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from bench.site import LINKS_PER_PAGE, MAX_TEXT_BYTES, MIN_TEXT_BYTES, SiteImage, make_image_pool
from crawlfleet.demo.serving import Reply, SiteServer

PRODUCTS_PER_CATEGORY = 100
_WORDS = (
    *("teapot", "ceramic", "glaze", "handle", "spout", "lid", "stoneware", "porcelain", "cup", "saucer"),
    *("kettle", "brew", "leaf", "steep", "pour", "warm", "blue", "green", "amber", "matte", "gloss", "kiln"),
    *("fired", "hand", "made", "studio", "small", "batch", "craft", "everyday", "gift", "kitchen", "table"),
)


def layout(pages: int) -> tuple[int, int]:
    """(categories, products) of a site of `pages` pages in all, the home page included."""
    if pages < 3:
        raise ValueError("a crawl site has at least 3 pages: home, a category, a product")
    categories = max(1, round((pages - 1) / (PRODUCTS_PER_CATEGORY + 1)))
    return categories, pages - 1 - categories


def _document(title: str, head: str, body: str) -> bytes:
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title>{head}</head>"
        f"<body><header><nav><a href='/'>Home</a></nav></header>{body}<footer>Crawl shop</footer></body></html>"
    ).encode()


def _text(rng: random.Random) -> str:
    paragraphs: list[str] = []
    budget = rng.randrange(MIN_TEXT_BYTES, MAX_TEXT_BYTES)
    while budget > 0:
        paragraph = " ".join(rng.choices(_WORDS, k=rng.randrange(40, 120))).capitalize() + "."
        paragraphs.append(f"<p>{paragraph}</p>")
        budget -= len(paragraph)
    return "".join(paragraphs)


@dataclass
class CrawlSite:
    """`pages` pages in all; product pages show `images_per_page` images of a pool of `pool_size`."""

    pages: int
    images_per_page: int = 0
    pool_size: int = 50
    seed: int = 1
    base: str = ""
    _routes: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    _server: SiteServer | None = None

    def generate(self) -> None:
        categories, products = layout(self.pages)
        pool = make_image_pool(self.pool_size, self.seed) if self.images_per_page else []
        for image in pool:
            self._routes[image.path] = (image.content_type, image.data)
        members: list[list[int]] = [[] for _ in range(categories)]
        for i in range(products):
            members[i % categories].append(i)
        home = "".join(f"<li><a href='/c/{k}'>Category {k}</a></li>" for k in range(categories))
        self._add("/", _document("Crawl shop", "", f"<main><h1>Crawl shop</h1><ul>{home}</ul></main>"))
        for k in range(categories):
            rng = random.Random(f"{self.seed}-c{k}")
            neighbours = {(k - 1) % categories, (k + 1) % categories} - {k}
            links = [f"<a href='/c/{n}'>Category {n}</a>" for n in sorted(neighbours)]
            links += [f"<li><a href='/p/{i}'>Product {i}</a></li>" for i in members[k]]
            body = f"<main><h1>Category {k}</h1><p>{_text(rng)[:600]}</p><ul>{''.join(links)}</ul></main>"
            self._add(f"/c/{k}", _document(f"Category {k}", "", body))
        for i in range(products):
            rng = random.Random(f"{self.seed}-p{i}")
            self._add(f"/p/{i}", self._product(i, i % categories, products, pool, rng))

    def _product(self, index: int, category: int, products: int, pool: list[SiteImage], rng: random.Random) -> bytes:
        title = f"Product {index}: {' '.join(rng.choices(_WORDS, k=3)).title()}"
        shown = rng.sample(pool, min(self.images_per_page, len(pool)))
        related = rng.sample(range(products), min(LINKS_PER_PAGE, products))
        links = "".join(f"<li><a href='/p/{j}'>Product {j}</a></li>" for j in related)
        figures = "".join(
            f"<figure><img src='{image.path}' width={image.width} height={image.height} alt='view {n}'></figure>"
            for n, image in enumerate(shown)
        )
        json_ld = json.dumps({"@context": "https://schema.org", "@type": "Product", "name": title, "sku": str(index)})
        head = (
            f"<meta name='description' content='{title} from the crawl shop'><link rel='canonical' href='/p/{index}'>"
            f"<script type='application/ld+json'>{json_ld}</script>"
        )
        body = (
            f"<main><h1>{title}</h1><a href='/c/{category}'>Category {category}</a>{figures}{_text(rng)}</main>"
            f"<aside><h2>Related</h2><ul>{links}</ul></aside>"
        )
        return _document(title, head, body)

    def _add(self, path: str, body: bytes) -> None:
        self._routes[path] = ("text/html; charset=utf-8", body)

    def paths(self) -> list[str]:
        """Every page's path (images excluded)."""
        return [path for path, (kind, _) in self._routes.items() if kind.startswith("text/")]

    def size_summary(self) -> dict[str, int]:
        pages = [body for kind, body in self._routes.values() if kind.startswith("text/")]
        images = [body for kind, body in self._routes.values() if kind.startswith("image/")]
        return {
            "pages": len(pages),
            "page_bytes_avg": sum(map(len, pages)) // max(1, len(pages)),
            "images": len(images),
            "image_bytes_avg": sum(map(len, images)) // max(1, len(images)),
        }

    def start(self, host: str = "127.0.0.1") -> CrawlSite:
        self._server = SiteServer(self._reply, name="crawl-site")
        self.base = self._server.start(host)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    @property
    def hits(self) -> int:
        """Requests served so far."""
        return sum(self._server.hits.values()) if self._server is not None else 0

    def _reply(self, target: str) -> Reply:
        content_type, body = self._routes.get(target.split("?", 1)[0], ("text/plain", b""))
        return Reply(200 if body else 404, {"Content-Type": content_type, "Cache-Control": "max-age=3600"}, body)
