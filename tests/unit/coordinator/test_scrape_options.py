"""Enqueue checks of declared fields, follow selectors and conditional GET validators: a bad one is
refused naming its field, before anything is inserted."""

from __future__ import annotations

import pytest

from crawlfleet.coordinator.api.validation import validate_enqueue
from crawlfleet.coordinator.errors import InvalidArgument
from crawlfleet.coordinator.settings import CoordinatorSettings
from crawlfleet.v1 import jobs_pb2

SETTINGS = CoordinatorSettings()
URL = "https://shop.example/teapot"


def enqueue(**scrape: object) -> None:
    good = jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url=URL))
    spec = jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url=URL, **scrape))  # type: ignore[arg-type]
    validate_enqueue([good, spec], SETTINGS)


def refused(**scrape: object) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        enqueue(**scrape)
    return caught.value


def css(name: str, selector: str, **options: object) -> jobs_pb2.FieldSpec:
    return jobs_pb2.FieldSpec(name=name, css=selector, **options)  # type: ignore[arg-type]


def test_good_fields_selectors_and_validators_pass() -> None:
    enqueue(
        fields=[
            css("title", "h1.title"),
            css("image", "img.main", attribute="src"),
            css("tags", "ul.tags > li", all=True),
            jobs_pb2.FieldSpec(name="price_2", json_ld="offers.price"),
            jobs_pb2.FieldSpec(name="graph_types", json_ld="@graph.@type", all=True),
        ],
        follow_selectors=[".products", "nav.pager a.next", "p:not(.ad)"],
        if_none_match='W/"abc", "def"',
        if_modified_since="Sun, 06 Nov 1994 08:49:37 GMT",
    )


@pytest.mark.parametrize(
    ("fields", "where", "message"),
    [
        ([css("Title", "h1")], "fields[0].name", "lower-case letters"),
        ([css("", "h1")], "fields[0].name", "lower-case letters"),
        ([css("9lives", "h1")], "fields[0].name", "starting with a letter"),
        ([css("x" * 65, "h1")], "fields[0].name", "1 to 64"),
        ([css("title", "h1"), css("title", "h2")], "fields[1].name", "declared twice"),
        ([css("a", "h1"), css("b", "h2"), css("c", "li[")], "fields[2].css", "not a CSS selector"),
        ([css("a", "p:nope")], "fields[0].css", "not a CSS selector"),
        ([css("a", " ")], "fields[0].css", "is empty"),
        ([css("a", "p" * 1025)], "fields[0].css", "at most 1024"),
        ([jobs_pb2.FieldSpec(name="a")], "fields[0].source", "css or json_ld"),
        ([css("a", "img", attribute="sr c")], "fields[0].attribute", "attribute name"),
        ([css("a", "img", attribute="x" * 257)], "fields[0].attribute", "longer than 256"),
        ([jobs_pb2.FieldSpec(name="a", json_ld="offers", attribute="src")], "fields[0].attribute", "only for css"),
        ([jobs_pb2.FieldSpec(name="a", json_ld="")], "fields[0].json_ld", "dot-separated keys"),
        ([jobs_pb2.FieldSpec(name="a", json_ld="offers..price")], "fields[0].json_ld", "none empty"),
        ([jobs_pb2.FieldSpec(name="a", json_ld="offers. price")], "fields[0].json_ld", "without spaces"),
        ([jobs_pb2.FieldSpec(name="a", json_ld=".".join("k" * 33))], "fields[0].json_ld", "more than 32 keys"),
        ([jobs_pb2.FieldSpec(name="a", json_ld="k" * 513)], "fields[0].json_ld", "longer than 512"),
        ([css(f"f{n}", "p") for n in range(51)], "fields", "at most 50"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(fields: list[jobs_pb2.FieldSpec], where: str, message: str) -> None:
    error = refused(fields=fields)
    assert error.field == f"jobs[1].scrape.{where}"
    assert message in error.message


@pytest.mark.parametrize(
    ("selectors", "where", "message"),
    [
        (["nav", "div >"], "follow_selectors[1]", "not a CSS selector"),
        ([""], "follow_selectors[0]", "is empty"),
        (["a"] * 21, "follow_selectors", "at most 20"),
    ],
)
def test_bad_follow_selectors_are_refused_naming_the_selector(selectors: list[str], where: str, message: str) -> None:
    error = refused(follow_selectors=selectors)
    assert error.field == f"jobs[1].scrape.{where}" and message in error.message


@pytest.mark.parametrize("name", ["if_none_match", "if_modified_since"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"abc"\r\nX-Injected: 1', "control characters"),
        ("\t1", "control characters"),
        ('"bücher"', "printable ASCII"),
        ("x" * 1025, "longer than 1024"),
    ],
)
def test_bad_validators_are_refused(name: str, value: str, message: str) -> None:
    error = refused(**{name: value})
    assert error.field == f"jobs[1].scrape.{name}" and message in error.message
