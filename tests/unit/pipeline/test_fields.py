"""Declared fields (CSS and JSON-LD) and follow selectors, as extract_page applies them."""

from __future__ import annotations

import json

import pytest

from crawlfleet.common import result_limits
from crawlfleet.worker.errors import JobError
from crawlfleet.worker.pipeline.extract import PageData, extract_page
from crawlfleet.worker.pipeline.fields import (
    MAX_FIELDS_BYTES,
    MAX_VALUE_BYTES,
    MAX_VALUES_PER_FIELD,
    FieldRule,
    cut_utf8,
)

PAGE_URL = "https://shop.example/product/teapot"
PRODUCT = {
    "@context": "https://schema.org",
    "@type": "Product",
    "name": "Blue teapot",
    "sku": 1234,
    "image": ["/a.jpg", "/b.jpg"],
    "inStock": True,
    "offers": [
        {"@type": "Offer", "price": 19.5, "priceCurrency": "EUR", "seller": {"name": "Teas & Co"}},
        {"@type": "Offer", "price": "21.00", "priceCurrency": "USD"},
    ],
}
GRAPH = {
    "@context": "https://schema.org",
    "@graph": [
        {"@type": "WebPage", "name": "Teapot page"},
        {"@type": "Organization", "name": "Teas & Co", "address": {"addressLocality": "Leeds"}},
    ],
}


def page(body: str, *rules: FieldRule, json_ld: tuple[object, ...] = (), follow: tuple[str, ...] = ()) -> PageData:
    head = "".join(f'<script type="application/ld+json">{json.dumps(doc)}</script>' for doc in json_ld)
    html = f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"
    return extract_page(html, PAGE_URL, fields=rules, follow_selectors=follow)


def values(data: PageData) -> dict[str, tuple[str, ...]]:
    return {field.name: field.values for field in data.fields}


# CSS fields

LISTING = """
<h1 class="title">  Blue
   teapot </h1>
<ul>
  <li class="price" data-cents="1950"> 19.50 <b>EUR</b></li>
  <li class="price"></li>
  <li class="price" data-cents="2100">21.00 <b>USD</b></li>
</ul>
<a class="next" href="/page/2"> next </a>
<svg viewBox="0 0 10 10"></svg>
"""


def test_css_text_is_the_first_match_whitespace_collapsed() -> None:
    data = page(LISTING, FieldRule(name="title", css="h1.title"), FieldRule(name="price", css=".price"))
    assert values(data) == {"title": ("Blue teapot",), "price": ("19.50 EUR",)}


def test_css_all_gives_every_match_in_document_order_without_empty_ones() -> None:
    data = page(LISTING, FieldRule(name="prices", css="li.price", all=True))
    assert values(data) == {"prices": ("19.50 EUR", "21.00 USD")}


def test_css_attribute_gives_its_value_and_skips_elements_without_it() -> None:
    data = page(
        LISTING,
        FieldRule(name="next", css="a.next", attribute="href"),
        FieldRule(name="cents", css="li", attribute="data-cents", all=True),
        FieldRule(name="upper", css="li", attribute="DATA-CENTS"),
        FieldRule(name="view_box", css="svg", attribute="viewBox"),
    )
    assert values(data) == {
        "next": ("/page/2",),
        "cents": ("1950", "2100"),
        "upper": ("1950",),  # HTML attribute names are case-insensitive
        "view_box": ("0 0 10 10",),  # SVG keeps its camel case
    }


def test_a_field_that_matches_nothing_has_no_values_and_keeps_its_place() -> None:
    data = page(
        LISTING,
        FieldRule(name="missing", css=".nothing"),
        FieldRule(name="no_attr", css="h1", attribute="href"),
        FieldRule(name="title", css="h1"),
    )
    assert [(f.name, f.values) for f in data.fields] == [("missing", ()), ("no_attr", ()), ("title", ("Blue teapot",))]


def test_a_selector_the_parser_refuses_fails_the_job_not_the_worker() -> None:
    with pytest.raises(JobError) as caught:
        page(LISTING, FieldRule(name="ok", css="h1"), FieldRule(name="bad", css="li:nope"))
    assert caught.value.error_type == "invalid_spec" and not caught.value.retryable
    assert "fields[1].css" in str(caught.value)


def test_pages_without_declared_fields_have_none() -> None:
    assert page(LISTING).fields == ()


# JSON-LD fields


def test_json_ld_paths_walk_objects_and_search_arrays_element_by_element() -> None:
    data = page(
        "",
        FieldRule(name="name", json_ld="name"),
        FieldRule(name="price", json_ld="offers.price"),
        FieldRule(name="prices", json_ld="offers.price", all=True),
        FieldRule(name="currencies", json_ld="offers.priceCurrency", all=True),
        FieldRule(name="seller", json_ld="offers.seller.name", all=True),
        json_ld=(PRODUCT,),
    )
    assert values(data) == {
        "name": ("Blue teapot",),
        "price": ("19.5",),  # a number as its JSON text
        "prices": ("19.5", "21.00"),
        "currencies": ("EUR", "USD"),
        "seller": ("Teas & Co",),
    }


def test_json_ld_values_render_numbers_booleans_objects_and_arrays() -> None:
    data = page(
        "",
        FieldRule(name="sku", json_ld="sku"),
        FieldRule(name="in_stock", json_ld="inStock"),
        FieldRule(name="images", json_ld="image", all=True),
        FieldRule(name="seller", json_ld="offers.seller"),
        FieldRule(name="missing", json_ld="offers.discount"),
        json_ld=(PRODUCT,),
    )
    assert values(data) == {
        "sku": ("1234",),
        "in_stock": ("true",),
        "images": ("/a.jpg", "/b.jpg"),
        "seller": ('{"name":"Teas & Co"}',),  # compact JSON
        "missing": (),
    }


def test_json_ld_graph_is_searched_element_by_element_and_documents_in_order() -> None:
    data = page(
        "",
        FieldRule(name="names", json_ld="name", all=True),
        FieldRule(name="town", json_ld="address.addressLocality"),
        FieldRule(name="types", json_ld="@type", all=True),
        json_ld=(GRAPH, [PRODUCT]),
    )
    assert values(data) == {
        "names": ("Teapot page", "Teas & Co", "Blue teapot"),
        "town": ("Leeds",),
        "types": ("WebPage", "Organization", "Product"),
    }


def test_invalid_json_ld_blocks_give_no_values() -> None:
    html = '<script type="application/ld+json">{"name": NaN}</script><script type="application/ld+json">{"name": 1'
    data = extract_page(html, PAGE_URL, fields=[FieldRule(name="name", json_ld="name")])
    assert values(data) == {"name": ()}


def test_css_fields_of_a_page_with_json_ld_and_the_other_way_round() -> None:
    data = page("<p class=x>text</p>", FieldRule(name="a", css="p.x"), FieldRule(name="b", json_ld="name"))
    assert values(data) == {"a": ("text",), "b": ()}


# Bounds


def test_the_worker_keeps_to_half_the_coordinators_caps() -> None:
    assert MAX_VALUES_PER_FIELD * 2 <= result_limits.MAX_FIELD_VALUES
    assert MAX_VALUE_BYTES * 2 <= result_limits.MAX_FIELD_VALUE_BYTES
    assert MAX_FIELDS_BYTES * 2 <= result_limits.MAX_FIELDS_BYTES


def test_values_are_cut_to_their_byte_bound_on_a_character_boundary() -> None:
    long_text = "é" * MAX_VALUE_BYTES  # two bytes each
    data = page(f"<p>{long_text}</p>", FieldRule(name="text", css="p"))
    (value,) = data.fields[0].values
    assert len(value.encode()) == MAX_VALUE_BYTES and set(value) == {"é"}
    assert cut_utf8("aé", 2) == "a"


def test_a_field_keeps_at_most_its_count_of_values() -> None:
    items = "".join(f"<li>{n}</li>" for n in range(MAX_VALUES_PER_FIELD + 50))
    data = page(f"<ul>{items}</ul>", FieldRule(name="items", css="li", all=True))
    assert data.fields[0].values == tuple(str(n) for n in range(MAX_VALUES_PER_FIELD))


def test_all_fields_together_keep_within_the_byte_budget() -> None:
    chunk = "x" * MAX_VALUE_BYTES
    per_field = 40
    items = "".join(f"<p>{chunk}</p>" for _ in range(per_field))
    rules = [FieldRule(name=f"f{n}", css="p", all=True) for n in range(8)]
    data = page(items, *rules)
    total = sum(len(v.encode()) for field in data.fields for v in field.values)
    assert total <= MAX_FIELDS_BYTES
    assert total == (MAX_FIELDS_BYTES // MAX_VALUE_BYTES) * MAX_VALUE_BYTES  # filled, then nothing more
    assert data.fields[0].values == (chunk,) * per_field and data.fields[-1].values == ()


# Follow selectors

NAVIGATION = """
<nav><a href="/">Home</a><a href="/about">About</a></nav>
<main>
  <div class="products"><a href="/p/1">One</a><div><a href="/p/2">Two</a></div></div>
  <a href="/about">About, again</a>
  <div class="pager"><a class="next" href="/page/2">Next</a></div>
</main>
<footer><a href="/p/1">One in the footer</a></footer>
"""


def followed(data: PageData) -> dict[str, bool]:
    return {link.url.removeprefix("https://shop.example"): link.followed for link in data.links}


def test_without_follow_selectors_every_link_is_followed() -> None:
    assert set(followed(page(NAVIGATION)).values()) == {True}


def test_links_inside_matched_elements_are_followed() -> None:
    data = page(NAVIGATION, follow=(".products", "a.next"))
    assert followed(data) == {"/": False, "/about": False, "/p/1": True, "/p/2": True, "/page/2": True}


def test_a_link_is_followed_when_any_of_its_occurrences_is_inside() -> None:
    data = page(NAVIGATION, follow=("main > a",))
    assert followed(data)["/about"] is True  # its first occurrence (in <nav>) is not
    assert [link.text for link in data.links if link.url.endswith("/about")] == ["About"]  # first text stands


def test_nested_matches_and_deep_pages_are_marked_once() -> None:
    deep = "<div>" * 900 + '<a href="/deep">deep</a>' + "</div>" * 900
    data = page(deep + '<section><a href="/out">out</a></section>', follow=("div",))
    assert followed(data) == {"/deep": True, "/out": False}


def test_a_follow_selector_the_parser_refuses_fails_the_job() -> None:
    with pytest.raises(JobError) as caught:
        page(NAVIGATION, follow=("nav", "a >"))
    assert caught.value.error_type == "invalid_spec" and "follow_selectors[1]" in str(caught.value)
