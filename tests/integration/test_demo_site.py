"""The demo site over real HTTP: what it serves, and that the scrape pipeline sees it as the demo expects.

The pipeline checks run the worker's own extraction, render=auto detection and image processing on the
site's responses, so the expected outcome the demo prints stays true to what the workers will do.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image, ImageOps

from crawlfleet.demo import DemoSite, crawl_seed, demo_urls, expected_outcome
from crawlfleet.demo.catalogue import BROKEN_PATH, build_catalogue
from crawlfleet.demo.urls import page_requests
from crawlfleet.worker.pipeline.autodetect import needs_browser
from crawlfleet.worker.pipeline.browser import BrowserOptions, BrowserPool, RoutedResponse
from crawlfleet.worker.pipeline.chromium import find_chromium
from crawlfleet.worker.pipeline.extract import extract_page
from crawlfleet.worker.pipeline.images import ImageError, ImageOptions, process_image


@pytest.fixture(scope="module")
def site() -> Iterator[DemoSite]:
    with DemoSite() as demo:
        yield demo


@pytest.fixture(scope="module")
def client(site: DemoSite) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.base, timeout=10) as http:
        yield http


def test_demo_urls_are_served(site: DemoSite, client: httpx.Client) -> None:
    urls = site.urls()
    assert urls == demo_urls(site.base)
    assert len(urls) == len(set(urls)) == expected_outcome().jobs == 33
    statuses = {url: client.get(url).status_code for url in urls}
    assert {url for url, status in statuses.items() if status != 200} == {site.base + BROKEN_PATH}
    assert statuses[site.base + BROKEN_PATH] == 404
    listing = client.get("/category/kettles?page=2").text
    assert f'href="..{BROKEN_PATH}"' in listing  # the dead link comes from a listing, relative


def test_pages_link_relatively_to_pages_the_site_serves(site: DemoSite, client: httpx.Client) -> None:
    page = extract_page(client.get("/category/teapots?page=2").text, site.base + "/category/teapots?page=2")
    targets = {link.url for link in page.links}
    assert site.base + "/category/teapots" in targets
    assert site.base + "/product/" + site.catalogue.products[4].slug in targets
    for url in targets:
        assert url.startswith(site.base) and client.get(url).status_code == 200


def test_static_product_page(site: DemoSite, client: httpx.Client) -> None:
    product = site.catalogue.products[0]
    response = client.get(product.path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["etag"] and response.headers["last-modified"]
    page = extract_page(response.text, str(response.url))
    assert page.title.startswith(product.name)
    assert page.canonical_url == site.base + product.path
    assert page.image_urls == (site.base + product.image_path,)  # <img> and og:image, one URL
    assert page.open_graph["og:image"] == site.base + product.image_path
    assert product.description[1] in page.main_text and product.price in page.main_text
    (ld,) = (json.loads(block) for block in page.json_ld)
    assert ld["@type"] == "Product" and ld["name"] == product.name and ld["sku"] == product.sku
    assert ld["offers"]["price"] == product.price
    links = {link.url for link in page.links}
    assert {site.base + "/", site.base + product.category.path, site.base + "/about"} <= links
    assert needs_browser(response.text, page) is None


def test_javascript_pages_are_app_shells(site: DemoSite, client: httpx.Client) -> None:
    js_products = [p for p in site.catalogue.products if p.js_rendered]
    assert len(js_products) == expected_outcome().rendered_in_browser == 6
    for product in js_products:
        html = client.get(product.path).text
        assert '<div id="app"></div>' in html and "window.__INITIAL_STATE__ = " in html
        assert "document.getElementById" in html and json.dumps(product.sku) in html
        page = extract_page(html, site.base + product.path)
        assert product.description[0] not in page.main_text and not page.json_ld
        reason = needs_browser(html, page)
        assert reason is not None and "empty app root" in reason


@pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed (playwright install chromium)")
@pytest.mark.timeout(60)
async def test_javascript_page_renders_in_a_browser(site: DemoSite) -> None:
    (product, *_) = (p for p in site.catalogue.products if p.js_rendered)
    async with httpx.AsyncClient(timeout=10) as http:

        async def fetch(method: str, url: str, headers: dict[str, str], body: bytes | None) -> RoutedResponse:
            response = await http.request(method, url, headers=headers, content=body)
            return RoutedResponse(status=response.status_code, headers=dict(response.headers), body=response.content)

        pool = BrowserPool(BrowserOptions(settle_timeout=0))
        try:
            rendered = await pool.render(site.base + product.path, timeout=30, fetch=fetch)
        finally:
            await pool.aclose()
    page = extract_page(rendered.html, rendered.final_url)
    assert product.description[1] in page.main_text and product.price in page.main_text
    assert page.image_urls == (site.base + product.image_path,)
    (ld,) = (json.loads(block) for block in page.json_ld)
    assert ld["@type"] == "Product" and ld["sku"] == product.sku and ld["offers"]["price"] == product.price
    assert site.base + product.category.path in {link.url for link in page.links}


def test_only_javascript_pages_escalate(site: DemoSite, client: httpx.Client) -> None:
    escalated = []
    for url in site.urls():
        response = client.get(url)
        if response.status_code == 200 and needs_browser(response.text, extract_page(response.text, url)):
            escalated.append(url)
    assert escalated == [site.base + p.path for p in site.catalogue.products if p.js_rendered]


def test_images_decode_and_dedupe_as_expected(site: DemoSite, client: httpx.Client) -> None:
    expected = expected_outcome()
    options = ImageOptions(thumbnail_sizes=())
    formats, hashes, failures = set(), set(), []
    for product in site.catalogue.products:
        response = client.get(product.image_path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/" + product.picture.format.lower()
        try:
            processed = process_image(response.content, options)
        except ImageError as exc:
            failures.append((product.index, exc.error_type))
            continue
        image = ImageOps.exif_transpose(Image.open(io.BytesIO(response.content)))
        assert image.size == product.picture.size == (processed.width, processed.height)
        assert 300 <= image.width <= 800 and 200 <= image.height <= 600
        formats.add(processed.format)
        hashes.add(processed.sha256)
    corrupt = [p.index for p in site.catalogue.products if p.corrupt_image]
    assert failures == [(corrupt[0], "corrupt_image")] and expected.image_failures == 1
    assert formats == {"JPEG", "PNG", "WEBP"}
    assert len(hashes) == expected.distinct_images == 20


def test_rotated_jpeg_is_stored_sideways(site: DemoSite, client: httpx.Client) -> None:
    (product,) = (p for p in site.catalogue.products if p.rotated)
    stored = Image.open(io.BytesIO(client.get(product.image_path).content))
    assert stored.getexif()[0x0112] == 6
    assert stored.size == product.picture.size[::-1]


def test_home_robots_and_not_found(site: DemoSite, client: httpx.Client) -> None:
    home = extract_page(client.get("/").text, site.base + "/")
    assert len(home.image_urls) == len(site.catalogue.featured) == expected_outcome().image_results - 24
    robots = client.get("/robots.txt")
    assert robots.headers["content-type"].startswith("text/plain") and "User-agent: *" in robots.text
    assert f"Sitemap: {site.base}/sitemap.xml" in robots.text
    assert client.get("/sitemap.xml").text.count("<loc>") == 32
    missing = client.get("/nope")
    assert missing.status_code == 404 and "Not found" in missing.text
    assert client.head("/about").headers["content-length"] == str(len(client.get("/about").content))


def test_content_is_deterministic(site: DemoSite) -> None:
    with DemoSite() as other:
        assert other.base != site.base
        for path in ("/about", site.catalogue.products[7].path, site.catalogue.products[2].image_path):
            ours, theirs = httpx.get(site.base + path).content, httpx.get(other.base + path).content
            assert theirs.replace(other.base.encode(), site.base.encode()) == ours
    assert build_catalogue() == site.catalogue


def test_a_crawl_from_home_reaches_every_page_and_counts_the_offsite_links(
    site: DemoSite, client: httpx.Client
) -> None:
    """Following links from the home page (as the demo's crawl does) finds every page the demo
    expects, at the depths it expects, and the off-site links it counts out of scope."""
    seed = crawl_seed(site.base)
    depth_of, frontier, offsite = {seed: 0}, [seed], 0
    while frontier:
        url = frontier.pop(0)
        response = client.get(url)
        if response.status_code != 200:
            continue
        for link in extract_page(response.text, url).links:
            if not link.url.startswith(site.base):
                offsite += 1
            elif link.url not in depth_of:
                depth_of[link.url] = depth_of[url] + 1
                frontier.append(link.url)
    assert sorted(depth_of) == sorted(site.urls())
    assert max(depth_of.values()) == expected_outcome().crawl_depth
    assert offsite == expected_outcome().offsite_links == 4
    assert sum(page_requests().values()) == len(site.urls())
