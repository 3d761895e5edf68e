"""The scrape benchmark's site: product pages and a pool of generated images, served on loopback.

Everything is generated once, up front and from a seed, so serving costs the benchmark process
next to nothing and every run sees the same bytes. Pages draw their images from a small pool, so
the same image appears on many pages (under the same URL) and the store's dedupe matters.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

from crawlfleet.demo.serving import Reply, SiteServer

# Photos are most of a shop's images; the rest are flat PNG graphics, some with transparency.
PNG_SHARE = 0.2
MIN_SIDE, MAX_SIDE = 400, 1200
LINKS_PER_PAGE = 20
# Every path again under this prefix, pages with their image URLs under it too (see warm_url).
WARM_PREFIX = "/warm/"
MIN_TEXT_BYTES, MAX_TEXT_BYTES = 5_000, 20_000
_VOCABULARY = (
    "teapot ceramic glaze handle spout lid stoneware porcelain cup saucer kettle brew leaf steep pour "
    "warm blue green amber matte gloss kiln fired hand made studio small batch craft everyday gift "
    "kitchen table morning afternoon ritual pot holds four cups dishwasher safe microwave oven durable "
    "light heavy balanced grip wide narrow base rim edge finish texture colour natural clay earth"
)
_WORDS = _VOCABULARY.split()


@dataclass(frozen=True, kw_only=True)
class SiteImage:
    path: str
    content_type: str
    data: bytes
    width: int
    height: int


def make_photo(rng: random.Random, size: tuple[int, int]) -> bytes:
    """A JPEG with gradients and noise: decodes and compresses roughly like a product photo."""
    width, height = size
    gradient = Image.linear_gradient("L").rotate(rng.uniform(0, 360)).resize(size)
    radial = Image.radial_gradient("L").resize(size)
    noise = Image.effect_noise(size, rng.uniform(20, 60))
    channels = [gradient, radial, noise]
    rng.shuffle(channels)
    image = Image.merge("RGB", channels)
    draw = ImageDraw.Draw(image)
    for _ in range(6):  # a few objects, so thumbnails and perceptual hashes differ between images
        x, y = rng.randrange(width), rng.randrange(height)
        radius = rng.randrange(20, min(width, height) // 3)
        fill = tuple(rng.randrange(256) for _ in range(3))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=rng.randrange(75, 92))
    return out.getvalue()


def make_graphic(rng: random.Random, size: tuple[int, int]) -> bytes:
    """A PNG of flat shapes, half of them on a transparent background."""
    transparent = rng.random() < 0.5
    mode, background = ("RGBA", (0, 0, 0, 0)) if transparent else ("RGB", (255, 255, 255))
    image = Image.new(mode, size, background)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.randrange(size[0]), rng.randrange(size[1])
        x1, y1 = x0 + rng.randrange(10, size[0] // 2), y0 + rng.randrange(10, size[1] // 2)
        fill = (*(rng.randrange(256) for _ in range(3)), 255)
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)((x0, y0, x1, y1), fill=fill)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def make_image_pool(count: int, seed: int) -> list[SiteImage]:
    """count distinct images, 400x300 to 1200x900 (about 4:3)."""
    rng = random.Random(seed)
    pool = []
    for k in range(count):
        width = rng.randrange(MIN_SIDE, MAX_SIDE + 1)
        size = (width, width * 3 // 4 + rng.randrange(-20, 21))
        if rng.random() < PNG_SHARE:
            path, content_type, data = f"/img/{k}.png", "image/png", make_graphic(rng, size)
        else:
            path, content_type, data = f"/img/{k}.jpg", "image/jpeg", make_photo(rng, size)
        pool.append(SiteImage(path=path, content_type=content_type, data=data, width=size[0], height=size[1]))
    return pool


def product_path(index: int) -> str:
    return f"/product/{index}"


def product_page(index: int, *, total: int, pool: list[SiteImage], images: int, rng: random.Random) -> bytes:
    """One product page: title, text, links to other pages, `images` distinct pool images, og:image."""
    title = f"Product {index}: {' '.join(rng.choices(_WORDS, k=3)).title()}"
    shown = rng.sample(pool, min(images, len(pool)))
    paragraphs: list[str] = []
    budget = rng.randrange(MIN_TEXT_BYTES, MAX_TEXT_BYTES)
    while budget > 0:
        paragraph = " ".join(rng.choices(_WORDS, k=rng.randrange(40, 120))).capitalize() + "."
        paragraphs.append(f"<p>{paragraph}</p>")
        budget -= len(paragraph)
    links = "".join(
        f"<li><a href='{product_path(j)}'>Product {j}</a></li>" for j in rng.sample(range(total), LINKS_PER_PAGE)
    )
    figures = "".join(
        f"<figure><img src='{image.path}' width={image.width} height={image.height} alt='view {n}'></figure>"
        for n, image in enumerate(shown)
    )
    json_ld = json.dumps({"@context": "https://schema.org", "@type": "Product", "name": title, "sku": str(index)})
    head = (
        f"<title>{title}</title><meta name='description' content='{paragraphs[0][3:160]}'>"
        f"<link rel='canonical' href='{product_path(index)}'><meta property='og:title' content='{title}'>"
        + (f"<meta property='og:image' content='{shown[0].path}'>" if shown else "")
        + f"<script type='application/ld+json'>{json_ld}</script>"
    )
    body = (
        "<header><nav><a href='/'>Home</a> <a href='/cart'>Cart</a></nav></header>"
        f"<main><h1>{title}</h1>{figures}{''.join(paragraphs)}</main>"
        f"<aside><h2>Related</h2><ul>{links}</ul></aside><footer>Bench shop</footer>"
    )
    return f"<!doctype html><html lang=en><head><meta charset=utf-8>{head}</head><body>{body}</body></html>".encode()


@dataclass
class BenchSite:
    """`pages` product pages at /product/<i> (any query string is ignored) and the image pool."""

    pages: int
    images_per_page: int
    pool_size: int
    seed: int = 1
    base: str = ""
    _routes: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    _server: SiteServer | None = None

    def generate(self) -> None:
        pool = make_image_pool(self.pool_size, self.seed) if self.images_per_page else []
        for image in pool:
            self._routes[image.path] = (image.content_type, image.data)
        for index in range(self.pages):
            rng = random.Random(f"{self.seed}-{index}")  # a page's text and images do not depend on --pages
            page = product_page(index, total=self.pages, pool=pool, images=self.images_per_page, rng=rng)
            self._routes[product_path(index)] = ("text/html; charset=utf-8", page)

    def size_summary(self) -> dict[str, int]:
        """Bytes of pages and images, for the progress line."""
        pages = [body for kind, body in self._routes.values() if kind.startswith("text/")]
        images = [body for kind, body in self._routes.values() if kind.startswith("image/")]
        return {
            "page_bytes_avg": sum(map(len, pages)) // max(1, len(pages)),
            "image_bytes_avg": sum(map(len, images)) // max(1, len(images)),
            "images": len(images),
        }

    def start(self, host: str = "127.0.0.1") -> BenchSite:
        self._server = SiteServer(self._reply, name="bench-site")
        self.base = self._server.start(host)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def _reply(self, target: str) -> Reply:
        path = target.split("?", 1)[0]
        warm = path.startswith(WARM_PREFIX)
        if warm:
            path = path.removeprefix(WARM_PREFIX.rstrip("/"))
        content_type, body = self._routes.get(path, ("text/plain", b""))
        if warm and content_type.startswith("text/"):
            body = body.replace(b"='/img/", b"='" + WARM_PREFIX.encode() + b"img/")
        return Reply(200 if body else 404, {"Content-Type": content_type, "Cache-Control": "max-age=3600"}, body)

    def url(self, index: int, query: str = "") -> str:
        return self.base + product_path(index) + (f"?{query}" if query else "")

    def warm_url(self, index: int, query: str = "") -> str:
        """A product page under /warm/, its images too: warming up primes no image cache."""
        return self.base + WARM_PREFIX.rstrip("/") + product_path(index) + (f"?{query}" if query else "")
