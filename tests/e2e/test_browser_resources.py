"""What a browser render loads, judged from the site's own request log: with the default
--browser-block, Chromium requests no images, fonts or media, and the page's images are still
downloaded (once each, by the image stage) and processed. With images allowed, the log shows the
browser's own image requests: the control that the log tells the two apart (by their Accept header:
Chromium asks for image/*, the image stage's client for anything)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import asyncpg
import pytest

from crawlfleet.v1 import jobs_pb2
from crawlfleet.worker.pipeline.chromium import find_chromium
from tests.e2e.processes import Fleet
from tests.e2e.test_scrape_pipeline import run, spec
from tests.helpers import QuietHandler, seconds, serving
from tests.site import make_image

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed (playwright install chromium)"),
]

PNG = make_image("PNG")
JPEG = make_image("JPEG")
PAGE = b"""<!doctype html><html><head><title>Resources</title><style>
@font-face { font-family: Remote; src: url('/font.woff2') format('woff2'); }
body { font-family: Remote; }
</style></head><body><main><p>A product with pictures, a clip and a jingle.</p>
<img src="/img/a.png" width=64 height=48><img src="/img/b.jpg" width=64 height=48>
<video src="/clip.webm" autoplay muted preload=auto></video><audio src="/jingle.ogg" autoplay preload=auto></audio>
</main></body></html>"""
FILES = {
    "/img/a.png": ("image/png", PNG),
    "/img/b.jpg": ("image/jpeg", JPEG),
    "/font.woff2": ("font/woff2", b"wOF2 not really a font"),
    "/clip.webm": ("video/webm", b"\x1aE\xdf\xa3 not really a video"),
    "/jingle.ogg": ("audio/ogg", b"OggS not really audio"),
}


@dataclass
class LoggingSite:
    """The page at any /page... path, the files above, and a log of (path, Accept)."""

    log: list[tuple[str, str | None]] = field(default_factory=list)
    base: str = ""

    def handler(self) -> type[QuietHandler]:
        site = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                site.log.append((path, self.headers.get("Accept")))
                content_type, body = FILES.get(path) or ("text/html; charset=utf-8", PAGE)
                self.answer(body, content_type)

        return Handler

    def requests(self, path: str) -> list[str | None]:
        return [dest for logged, dest in self.log if logged == path]


@pytest.fixture
def site() -> Iterator[LoggingSite]:
    site = LoggingSite()
    with serving(site.handler()) as site.base:
        yield site


async def render(fleet: Fleet, db: asyncpg.Pool, port: int, url: str, *worker_flags: str) -> int:
    worker = fleet.worker(f"worker-{len(fleet.processes)}", port, "--slots", "1", *worker_flags)
    (job_id,) = await run(port, db, [spec(url, jobs_pb2.RENDER_MODE_BROWSER, timeout=seconds(30))])
    worker.proc.kill()
    worker.proc.wait(timeout=10)
    return job_id


async def test_a_render_loads_no_images_fonts_or_media_and_the_images_are_still_processed(
    fleet: Fleet, db_dsn: str, db: asyncpg.Pool, site: LoggingSite
) -> None:
    coordinator = await fleet.coordinator("coordinator", db_dsn)
    port = coordinator.port or 0
    blocked = await render(fleet, db, port, site.base + "/page")
    for path in ("/font.woff2", "/clip.webm", "/jingle.ogg"):
        assert site.requests(path) == []
    # Each image once, and not by the browser.
    assert site.requests("/img/a.png") == ["*/*"] and site.requests("/img/b.jpg") == ["*/*"]
    stored = await db.fetch(
        "SELECT pi.url, pi.image_sha256 FROM page_images pi WHERE pi.job_id = $1 ORDER BY position", blocked
    )
    assert [(r["url"], r["image_sha256"]) for r in stored] == [
        (site.base + "/img/a.png", hashlib.sha256(PNG).hexdigest()),
        (site.base + "/img/b.jpg", hashlib.sha256(JPEG).hexdigest()),
    ]
    assert await db.fetchval("SELECT state::text FROM jobs WHERE id = $1", blocked) == "succeeded"

    site.log.clear()
    await render(fleet, db, port, site.base + "/page?images", "--browser-block", "font,media")
    by_browser = [accept for accept in site.requests("/img/a.png") if accept and accept.startswith("image/")]
    assert len(by_browser) == 1 and site.requests("/img/a.png").count("*/*") == 1
    assert site.requests("/font.woff2") == []
