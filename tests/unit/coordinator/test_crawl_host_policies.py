"""A crawl's politeness as host policies: the patterns its scope covers, what it stores, and which
of its limits loosen the fleet defaults (those need the admin role)."""

from __future__ import annotations

import pytest

from crawlfleet.common.hosts import is_host_pattern
from crawlfleet.coordinator.crawling.host_policies import CrawlHostPolicy, crawl_host_policy, looser_than
from crawlfleet.coordinator.politeness import Politeness
from crawlfleet.v1 import crawls_pb2
from tests.helpers import seconds

SEEDS = [
    "https://www.shop.example.co.uk/",
    "http://shop.example.co.uk:8080/a",
    "http://127.0.0.1:8000/",
    "http://[::1]:81/",
]


@pytest.mark.parametrize(
    ("scope", "patterns"),
    [
        (crawls_pb2.CRAWL_SCOPE_UNSPECIFIED, ["127.0.0.1", "[::1]", "shop.example.co.uk", "www.shop.example.co.uk"]),
        (crawls_pb2.CRAWL_SCOPE_ALL, ["127.0.0.1", "[::1]", "shop.example.co.uk", "www.shop.example.co.uk"]),
        (
            crawls_pb2.CRAWL_SCOPE_SAME_ORIGIN,
            ["127.0.0.1:8000", "[::1]:81", "shop.example.co.uk:8080", "www.shop.example.co.uk"],
        ),
        (crawls_pb2.CRAWL_SCOPE_SAME_DOMAIN, ["*.example.co.uk", "127.0.0.1", "[::1]"]),  # by the Public Suffix List
    ],
)
def test_patterns_follow_the_scope(scope: crawls_pb2.CrawlScope.ValueType, patterns: list[str]) -> None:
    spec = crawls_pb2.CrawlSpec(seeds=SEEDS, scope=scope, politeness=crawls_pb2.CrawlPoliteness(max_concurrency=1))
    policy = crawl_host_policy(spec)
    assert policy is not None and policy.patterns == patterns
    assert all(is_host_pattern(p) for p in policy.patterns)  # what host_policies' CHECK takes


def test_no_politeness_no_policy() -> None:
    assert crawl_host_policy(crawls_pb2.CrawlSpec(seeds=SEEDS)) is None
    assert crawl_host_policy(crawls_pb2.CrawlSpec(seeds=SEEDS, politeness=crawls_pb2.CrawlPoliteness())) is None
    polite = crawls_pb2.CrawlPoliteness(delay=seconds(0.25), obey_robots=False)
    assert crawl_host_policy(crawls_pb2.CrawlSpec(seeds=SEEDS[:1], politeness=polite)) == CrawlHostPolicy(
        ["www.shop.example.co.uk"], None, 250, False
    )


@pytest.mark.parametrize(
    ("concurrency", "delay_ms", "obey", "looser"),
    [
        (2, 500, True, []),  # the defaults themselves
        (1, 5000, None, []),
        (3, None, None, ["max_concurrency"]),
        (None, 499, None, ["delay"]),
        (None, None, False, ["obey_robots"]),
        (16, 0, False, ["max_concurrency", "delay", "obey_robots"]),
    ],
)
def test_only_limits_beyond_the_defaults_are_looser(
    concurrency: int | None, delay_ms: int | None, obey: bool | None, looser: list[str]
) -> None:
    policy = CrawlHostPolicy(["shop.example"], concurrency, delay_ms, obey)
    assert looser_than(policy, Politeness()) == looser


def test_ignoring_robots_is_not_looser_where_the_fleet_ignores_it() -> None:
    policy = CrawlHostPolicy(["shop.example"], None, None, False)
    assert looser_than(policy, Politeness(obey_robots=False)) == []
