"""A local test site: real pages and real images over HTTP, including every bad case the scrape
pipeline must handle. Serve it with `LocalSite.start(host)`; it runs in a thread."""

from __future__ import annotations

import gzip
import io
import json
import struct
import threading
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from crawlfleet.demo.serving import Reply, SiteServer

Response = tuple[int, dict[str, str], bytes]


def make_image(fmt: str, size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """An image with a gradient (so its perceptual hash is not trivial)."""
    image = Image.new("RGB", size, color)
    for x in range(size[0]):
        for y in range(0, size[1], 4):
            image.putpixel((x, y), (x * 4 % 256, y * 5 % 256, 90))
    out = io.BytesIO()
    if fmt == "GIF":
        image.convert("P").save(out, "GIF")
    else:
        image.save(out, fmt)
    return out.getvalue()


def rotated_jpeg() -> bytes:
    """Stored 80x40 with EXIF orientation 6: shown (and reported) as 40x80."""
    image = Image.new("RGB", (80, 40), (10, 120, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 30000) -> bytes:
    """A few-hundred-byte PNG whose header declares side x side pixels (1-bit gray): a
    decompression bomb. Only the first rows are present; it must be refused before decoding."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * ((side + 7) // 8 + 1) * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b"")


def gzip_bomb(size: int) -> bytes:
    return gzip.compress(b" " * size, compresslevel=9)


def html(title: str, body: str, head: str = "") -> bytes:
    return f"<!doctype html><html lang=en><head><title>{title}</title>{head}</head><body>{body}</body></html>".encode()


@dataclass
class LocalSite:
    """Routes by path (any query is ignored); `base` is the site's URL once started."""

    routes: dict[str, Callable[[], Response]] = field(default_factory=dict)
    slow_release: threading.Event = field(default_factory=threading.Event)
    server: SiteServer = field(init=False)

    def __post_init__(self) -> None:
        self.server = SiteServer(self._reply, name="test-site")

    @property
    def base(self) -> str:
        return self.server.base

    @property
    def hits(self) -> Counter[str]:
        return self.server.hits

    def start(self, host: str = "127.0.0.1", tls: tuple[Path, Path] | None = None) -> LocalSite:
        """Serve in a thread; with tls=(certificate, key), over HTTPS."""
        self.server.start(host, tls=tls)
        return self

    def stop(self) -> None:
        self.slow_release.set()
        self.server.stop()

    def url(self, path: str) -> str:
        return self.base + path

    def _reply(self, target: str) -> Reply:
        route = self.routes.get(target.split("?", 1)[0])
        return Reply(*route()) if route else Reply(404, {"Content-Type": "text/html"}, b"not found")


def page(body: bytes, status: int = 200, **headers: str) -> Callable[[], Response]:
    return lambda: (status, {"Content-Type": "text/html; charset=utf-8", **headers}, body)


def blob(data: bytes, content_type: str) -> Callable[[], Response]:
    return lambda: (200, {"Content-Type": content_type}, data)


def redirect(location: str, status: int = 302) -> Callable[[], Response]:
    return lambda: (status, {"Location": location}, b"")


PHOTO_JPEG = make_image("JPEG", (120, 90))
PHOTO_PNG = make_image("PNG", (50, 50), (0, 160, 0))
PHOTO_WEBP = make_image("WEBP", (70, 30), (0, 0, 180))
PHOTO_GIF = make_image("GIF", (40, 40), (200, 200, 0))
ROTATED_JPEG = rotated_jpeg()
CORRUPT_JPEG = PHOTO_JPEG[: len(PHOTO_JPEG) // 2]


def catalogue_site(*, huge_bytes: int = 2 * 1024 * 1024, extra_html: str = "") -> LocalSite:
    """The site the pipeline tests scrape."""
    site = LocalSite()
    json_ld = json.dumps({"@context": "https://schema.org", "@type": "Product", "name": "Blue teapot"})
    static_head = (
        '<meta name="description" content="A blue teapot for four.">'
        '<link rel="canonical" href="/product/teapot">'
        '<meta property="og:title" content="Teapot OG"><meta property="og:image" content="/img/photo.webp">'
        f'<script type="application/ld+json">{json_ld}</script>'
    )
    static_body = (
        "<nav><a href='/'>Home</a></nav><main><h1>Blue teapot</h1><p>Holds four cups of tea.</p>"
        "<a href='/product/mug'>Mug</a> <a href='https://elsewhere.example/x#frag'>Elsewhere</a>"
        "<img src='/img/photo.jpg'><img src='/img/photo.png'><img src='/img/photo.gif'>"
        "<img src='/img/rotated.jpg'><img src='/img/corrupt.jpg'><img src='/img/bomb.png'>"
        "<img src='/img/missing.png'></main><footer>footer text</footer>" + extra_html
    )
    spa = (
        "<div id='root'></div><script>document.getElementById('root').innerHTML = "
        "'<h1>Rendered by JavaScript</h1><p>' + 'This text only exists once scripts run. '.repeat(12) + '</p>';"
        "</script>"
    )
    site.routes.update(
        {
            "/static": page(html("Blue teapot", static_body, static_head)),
            "/gallery-a": page(html("Gallery A", "<p>one</p><img src='/img/photo.jpg'>")),
            "/gallery-b": page(html("Gallery B", "<p>two</p><img src='/img/photo.jpg'>")),
            "/spa": page(html("App shell", spa)),
            "/r1": redirect("/r2", 301),
            "/r2": redirect("/static", 302),
            "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/", 302),
            "/missing": page(html("Missing", "gone"), 404),
            "/gone": page(html("Gone", "gone"), 410),
            "/error": page(html("Error", "boom"), 500),
            "/busy": page(html("Busy", "later"), 429, **{"Retry-After": "120"}),
            "/huge": page(html("Huge", "x" * huge_bytes)),
            "/gzip-bomb": lambda: (
                200,
                {"Content-Type": "text/html", "Content-Encoding": "gzip"},
                gzip_bomb(huge_bytes * 4),
            ),
            "/report.pdf": blob(b"%PDF-1.4 not a page", "application/pdf"),
            "/img/photo.jpg": blob(PHOTO_JPEG, "image/jpeg"),
            "/img/photo.png": blob(PHOTO_PNG, "image/png"),
            "/img/photo.webp": blob(PHOTO_WEBP, "image/webp"),
            "/img/photo.gif": blob(PHOTO_GIF, "image/gif"),
            "/img/rotated.jpg": blob(ROTATED_JPEG, "image/jpeg"),
            "/img/corrupt.jpg": blob(CORRUPT_JPEG, "image/jpeg"),
            "/img/bomb.png": blob(bomb_png(), "image/png"),
        }
    )

    def slow() -> Response:
        site.slow_release.wait(10)
        return 200, {"Content-Type": "text/html"}, html("Slow", "finally")

    site.routes["/slow"] = slow
    return site
