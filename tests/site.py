"""A local test site: real pages and real images over HTTP, including every bad case the scrape
pipeline must handle. Serve it with `LocalSite.start(host)`; it runs in a thread."""

from __future__ import annotations

import functools
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

from crawlfleet.demo.serving import Reply, Request, SiteServer
from crawlfleet.worker.pipeline.settings import MAX_REDIRECTS

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


_BOMB_BLOCK = 1 << 20
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, no mtime, unknown OS
_ZLIB_HEADER = b"\x78\xda"  # deflate, 32 KiB window, best compression
BOMB_ENCODINGS = ("gzip", "deflate", "raw-deflate")


@functools.cache
def compression_bomb(size: int, encoding: str = "gzip") -> bytes:
    """`size` zero bytes compressed as `encoding`: "gzip", "deflate" (zlib-wrapped) or "raw-deflate"
    (what some servers send as deflate). Built without ever holding the inflated bytes: a megabyte of
    zeros is deflated once and its output repeated, each copy ended by a full flush (which resets the
    compressor and aligns to a byte, so copies can be laid end to end). 1 GiB comes out near 1 MB."""
    if encoding not in BOMB_ENCODINGS:
        raise ValueError(f"encoding must be one of {BOMB_ENCODINGS}, got {encoding!r}")
    blocks, rest = divmod(size, _BOMB_BLOCK)
    body = _deflated_zeros(_BOMB_BLOCK) * blocks + (_deflated_zeros(rest) if rest else b"")
    body += zlib.compressobj(wbits=-zlib.MAX_WBITS).flush()  # an empty final block
    crc, adler = 0, 1
    zeros = bytes(_BOMB_BLOCK)
    for start in range(0, size, _BOMB_BLOCK):
        part = zeros[: min(_BOMB_BLOCK, size - start)]
        crc, adler = zlib.crc32(part, crc), zlib.adler32(part, adler)
    if encoding == "gzip":
        return _GZIP_HEADER + body + struct.pack("<II", crc, size & 0xFFFF_FFFF)
    if encoding == "deflate":
        return _ZLIB_HEADER + body + struct.pack(">I", adler)
    return body


def _deflated_zeros(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(bytes(size)) + compressor.flush(zlib.Z_FULL_FLUSH)


def html(title: str, body: str, head: str = "") -> bytes:
    return f"<!doctype html><html lang=en><head><title>{title}</title>{head}</head><body>{body}</body></html>".encode()


@dataclass
class LocalSite:
    """Routes by path (any query is ignored); `base` is the site's URL once started."""

    routes: dict[str, Callable[[], Response]] = field(default_factory=dict)
    slow_release: threading.Event = field(default_factory=threading.Event)
    server: SiteServer = field(init=False)

    def __post_init__(self) -> None:
        self.server = SiteServer(self._reply, name="test-site", log_requests=True)

    @property
    def base(self) -> str:
        return self.server.base

    @property
    def hits(self) -> Counter[str]:
        return self.server.hits

    @property
    def requests(self) -> list[Request]:
        """Every request so far, in arrival order (a copy: the server thread appends to its own)."""
        return list(self.server.requests)

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


def bomb(size: int, encoding: str = "gzip", content_type: str = "text/html") -> Callable[[], Response]:
    """`size` zeros under a content coding (see `compression_bomb`), built on the first request."""
    header = "deflate" if encoding == "raw-deflate" else encoding
    return lambda: (200, {"Content-Type": content_type, "Content-Encoding": header}, compression_bomb(size, encoding))


PHOTO_JPEG = make_image("JPEG", (120, 90))
PHOTO_PNG = make_image("PNG", (50, 50), (0, 160, 0))
PHOTO_WEBP = make_image("WEBP", (70, 30), (0, 0, 180))
PHOTO_GIF = make_image("GIF", (40, 40), (200, 200, 0))
ROTATED_JPEG = rotated_jpeg()
BOMB_BYTES = 1 << 30  # inflated; about 1 MB on the wire
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
            "/gzip-bomb": bomb(BOMB_BYTES),
            "/report.pdf": blob(b"%PDF-1.4 not a page", "application/pdf"),
            "/download": blob(b"\x00\x01 not a page either", "application/octet-stream"),
            "/overloaded": page(html("Overloaded", "later"), 503, **{"Retry-After": "30"}),
            "/attachment": page(
                html("Attachment", "<p>an HTML page sent as a download</p>"),
                200,
                **{"Content-Disposition": 'attachment; filename="page.html"'},
            ),
            "/loop": redirect("/loop"),
            "/bomb-gallery": page(html("Bomb gallery", "<img src='/img/gzip-bomb.jpg'><img src='/img/photo.jpg'>")),
            "/img/gzip-bomb.jpg": bomb(BOMB_BYTES, content_type="image/jpeg"),
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
    # /hop/0 is MAX_REDIRECTS + 1 redirects from /static, /hop/1 exactly MAX_REDIRECTS.
    for hop in range(MAX_REDIRECTS + 1):
        site.routes[f"/hop/{hop}"] = redirect(f"/hop/{hop + 1}" if hop < MAX_REDIRECTS else "/static")
    return site
