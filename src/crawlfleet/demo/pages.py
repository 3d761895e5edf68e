"""The demo shop's HTML: home, category listings, products (static or JavaScript-rendered), about.

Links between pages and to images are relative (``../product/x``), as on many real sites; canonical URLs,
``og:url`` and ``og:image`` are absolute, as the specifications ask. A JavaScript-rendered product page is an
app shell: an empty ``<div id="app">`` and an inline script that builds the page from its embedded state, so a
plain HTTP fetch sees no content and a scraper in ``render=auto`` has to use a browser.
"""

from __future__ import annotations

import json
from html import escape

from crawlfleet.demo.catalogue import (
    ABOUT_OFFSITE_LINKS,
    BROKEN_PATH,
    HOME_OFFSITE_LINKS,
    PAGES_PER_CATEGORY,
    Catalogue,
    Category,
    Product,
)

SHOP = "crawlfleet demo shop"
CURRENCY = "EUR"
SYMBOL = "€"

# Builds a product page from window.__INITIAL_STATE__ (see product_state); text only through textContent.
APP_SCRIPT = """(function () {
  var state = window.__INITIAL_STATE__, p = state.product;
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) node.textContent = text;
    return node;
  }
  var app = document.getElementById("app"), crumbs = el("ol"), article = el("article", {"class": "product"});
  state.breadcrumbs.forEach(function (c) {
    var item = el("li");
    item.appendChild(c.href ? el("a", {href: c.href}, c.name) : document.createTextNode(c.name));
    crumbs.appendChild(item);
  });
  app.appendChild(el("nav", {"aria-label": "Breadcrumb"})).appendChild(crumbs);
  article.appendChild(el("h1", {}, p.name));
  article.appendChild(el("img", {src: p.image, alt: p.name, width: p.width, height: p.height}));
  article.appendChild(el("p", {"class": "price"}, p.symbol + p.price));
  article.appendChild(el("p", {"class": "sku"}, "SKU " + p.sku));
  p.description.forEach(function (text) { article.appendChild(el("p", {}, text)); });
  article.appendChild(el("p")).appendChild(el("a", {href: p.more.href}, p.more.name));
  app.appendChild(el("main")).appendChild(article);
  var ld = el("script", {type: "application/ld+json"});
  ld.textContent = JSON.stringify(state.jsonLd);
  document.head.appendChild(ld);
})();"""


def rel(page: str, target: str) -> str:
    """``target`` (a site path) relative to the page at ``page``: ``rel("/product/a", "/images/a.png")``."""
    depth = page.split("?", 1)[0].count("/") - 1
    rest = target.lstrip("/")
    return ("../" * depth + rest) or "./"


def _script_json(value: object) -> str:
    """JSON that is safe inside a <script> element."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


def layout(
    base: str, path: str, catalogue: Catalogue, title: str, body: str, *, head: str = "", canonical: bool = True
) -> bytes:
    """A whole page: the shared head, header navigation and footer around ``body``."""
    if canonical:
        head = f'<link rel="canonical" href="{base}{escape(path)}">{head}'
    nav = "".join(f'<li><a href="{rel(path, c.path)}">{escape(c.name)}</a></li>' for c in catalogue.categories)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{head}</head><body>"
        f'<header><a href="{rel(path, "/")}">{SHOP}</a><nav><ul>{nav}'
        f'<li><a href="{rel(path, "/about")}">About</a></li></ul></nav></header>'
        f"{body}<footer><p>{SHOP}, generated for crawlfleet. Prices in {CURRENCY}.</p></footer></body></html>"
    ).encode()


def _breadcrumbs(path: str, trail: list[tuple[str, str | None]]) -> str:
    items = "".join(
        f'<li><a href="{rel(path, href)}">{escape(name)}</a></li>' if href else f"<li>{escape(name)}</li>"
        for name, href in trail
    )
    return f'<nav aria-label="Breadcrumb"><ol>{items}</ol></nav>'


def _offsite(links: tuple[tuple[str, str], ...]) -> str:
    return "".join(f'<li><a href="{href}" rel="external">{escape(name)}</a></li>' for name, href in links)


def home(base: str, catalogue: Catalogue) -> bytes:
    categories = "".join(
        f'<li><a href="{rel("/", c.path)}">{escape(c.name)}</a>: {escape(c.blurb)}</li>' for c in catalogue.categories
    )
    cards = "".join(
        f'<li><a href="{rel("/", p.path)}"><img src="{rel("/", p.image_path)}" alt="{escape(p.name)}" '
        f'width="{p.picture.size[0]}" height="{p.picture.size[1]}">{escape(p.name)}</a> {SYMBOL}{p.price}</li>'
        for p in catalogue.featured
    )
    body = (
        f"<main><h1>{SHOP}</h1><p>Teapots, mugs and kettles from a small studio that exists only to be scraped. "
        f"Every page here is generated, the same on every run.</p><h2>Shop by category</h2><ul>{categories}</ul>"
        f'<h2>Featured</h2><ul class="featured">{cards}</ul>'
        f'<h2>Elsewhere</h2><ul class="elsewhere">{_offsite(HOME_OFFSITE_LINKS)}</ul></main>'
    )
    head = '<meta name="description" content="A small generated shop of teapots, mugs and kettles.">'
    return layout(base, "/", catalogue, SHOP, body, head=head)


def listing(base: str, catalogue: Catalogue, category: Category, page: int) -> bytes:
    path = category.page_path(page)
    items = [
        f'<li><a href="{rel(path, p.path)}">{escape(p.name)}</a> {SYMBOL}{p.price}</li>'
        for p in catalogue.listing(category, page)
    ]
    if category == catalogue.categories[-1] and page == PAGES_PER_CATEGORY:
        items.append(f'<li><a href="{rel(path, BROKEN_PATH)}">Copper kettle</a> (sold out)</li>')
    pager = [
        f'<a href="{rel(path, category.page_path(n))}"{" aria-current=page" if n == page else ""}>Page {n}</a>'
        for n in range(1, PAGES_PER_CATEGORY + 1)
    ]
    head = f'<meta name="description" content="{escape(category.blurb)}">'
    if page < PAGES_PER_CATEGORY:
        head += f'<link rel="next" href="{rel(path, category.page_path(page + 1))}">'
    if page > 1:
        head += f'<link rel="prev" href="{rel(path, category.page_path(page - 1))}">'
    body = (
        _breadcrumbs(path, [("Home", "/"), (category.name, None)])
        + f"<main><h1>{escape(category.name)}</h1><p>{escape(category.blurb)} Page {page} of {PAGES_PER_CATEGORY}."
        f'</p><ul class="products">{"".join(items)}</ul><nav class="pagination">{" ".join(pager)}</nav></main>'
    )
    return layout(base, path, catalogue, f"{category.name} (page {page}) | {SHOP}", body, head=head)


def product_state(base: str, product: Product) -> dict[str, object]:
    """What a product page shows, as data: the JSON-LD, and the state a JavaScript page is built from."""
    path = product.path
    json_ld = {
        "@context": "https://schema.org",
        "@type": "Product",
        "name": product.name,
        "sku": product.sku,
        "description": product.description[0],
        "image": base + product.image_path,
        "category": product.category.name,
        "offers": {"@type": "Offer", "price": product.price, "priceCurrency": CURRENCY, "url": base + path},
    }
    return {
        "product": {
            "name": product.name,
            "sku": product.sku,
            "price": product.price,
            "symbol": SYMBOL,
            "description": list(product.description),
            "image": rel(path, product.image_path),
            "width": product.picture.size[0],
            "height": product.picture.size[1],
            "more": {
                "href": rel(path, product.category.page_path(product.page)),
                "name": f"More {product.category.name}",
            },
        },
        "breadcrumbs": [
            {"name": "Home", "href": rel(path, "/")},
            {"name": product.category.name, "href": rel(path, product.category.path)},
            {"name": product.name, "href": None},
        ],
        "jsonLd": json_ld,
    }


def product_page(base: str, catalogue: Catalogue, product: Product) -> bytes:
    """The product's page: static HTML, or an app shell for the JavaScript-rendered products."""
    path, name = product.path, escape(product.name)
    state = product_state(base, product)
    head = (
        f'<meta name="description" content="{escape(product.description[0].split(".")[0])}.">'
        f'<meta property="og:type" content="product"><meta property="og:title" content="{name}">'
        f'<meta property="og:url" content="{base}{path}">'
        f'<meta property="og:image" content="{base}{product.image_path}">'
    )
    if product.js_rendered:
        body = (
            '<div id="app"></div><noscript>Please enable JavaScript to see this product.</noscript>'
            f"<script>window.__INITIAL_STATE__ = {_script_json(state)};\n{APP_SCRIPT}</script>"
        )
        return layout(base, path, catalogue, f"{product.name} | {SHOP}", body, head=head)
    head += f'<script type="application/ld+json">{_script_json(state["jsonLd"])}</script>'
    width, height = product.picture.size
    paragraphs = "".join(f"<p>{escape(text)}</p>" for text in product.description)
    more = rel(path, product.category.page_path(product.page))
    body = (
        _breadcrumbs(path, [("Home", "/"), (product.category.name, product.category.path), (product.name, None)])
        + f'<main><article class="product"><h1>{name}</h1><img src="{rel(path, product.image_path)}" alt="{name}" '
        f'width="{width}" height="{height}"><p class="price">{SYMBOL}{product.price}</p>'
        f'<p class="sku">SKU {product.sku}</p>{paragraphs}'
        f'<p><a href="{more}">More {escape(product.category.name)}</a></p></article></main>'
    )
    return layout(base, path, catalogue, f"{product.name} | {SHOP}", body, head=head)


def about(base: str, catalogue: Catalogue) -> bytes:
    js = sum(p.js_rendered for p in catalogue.products)
    body = (
        f"<main><h1>About the {SHOP}</h1><p>This shop is generated for the crawlfleet demo and served on loopback. "
        f"It has {len(catalogue.categories)} categories of {len(catalogue.products) // len(catalogue.categories)} "
        f"products, listed {PAGES_PER_CATEGORY} pages each. {js} product pages are built by JavaScript in the "
        "browser, so a plain HTTP fetch finds an empty app shell. A few gift sets reuse the photo of their product, "
        "one photo is stored sideways with an EXIF orientation, one product image is corrupt, and one listing links "
        "to a product that no longer exists.</p><p>Nothing on this site is for sale.</p>"
        f'<ul class="elsewhere">{_offsite(ABOUT_OFFSITE_LINKS)}</ul></main>'
    )
    head = '<meta name="description" content="What the crawlfleet demo shop is.">'
    return layout(base, "/about", catalogue, f"About | {SHOP}", body, head=head)


def not_found(base: str, catalogue: Catalogue, path: str) -> bytes:
    body = (
        f'<main><h1>Not found</h1><p>There is no page here. <a href="{rel(path, "/")}">Back to the shop</a>.</p></main>'
    )
    return layout(base, path, catalogue, f"Not found | {SHOP}", body, canonical=False)
