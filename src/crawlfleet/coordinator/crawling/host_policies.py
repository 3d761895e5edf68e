"""A crawl's politeness (``CrawlSpec.politeness``) as host policies of its own, live while it runs.

The patterns follow the crawl's scope, so the limits cover the hosts it is meant to crawl: each
seed's host name (any port, as the same-hostname scope), each seed's host with its port (same
origin), or each seed's registrable domain and every host under it (``*.domain``, same domain).
A crawl with scope ``all`` covers its seeds' host names only: hosts it wanders to keep their own
policies. Migration 0013 says how they combine with operators' policies and other crawls'.
"""

from __future__ import annotations

from typing import NamedTuple

from crawlfleet.common.hosts import host_of
from crawlfleet.coordinator.crawling.scope import registrable_domain
from crawlfleet.coordinator.politeness import Politeness
from crawlfleet.v1 import crawls_pb2


class CrawlHostPolicy(NamedTuple):
    """The limits a crawl asks for (None: left as they are) and the host patterns they cover."""

    patterns: list[str]
    max_concurrency: int | None
    delay_ms: int | None
    obey_robots: bool | None


def policy_patterns(spec: crawls_pb2.CrawlSpec) -> list[str]:
    """The host patterns a validated spec's politeness covers, sorted; none without politeness."""
    if not spec.HasField("politeness"):
        return []
    patterns = set()
    for seed in spec.seeds:
        host = host_of(seed)
        name = _without_port(host)
        if spec.scope == crawls_pb2.CRAWL_SCOPE_SAME_ORIGIN:
            patterns.add(host)
        elif spec.scope == crawls_pb2.CRAWL_SCOPE_SAME_DOMAIN and not name.startswith("["):
            domain = registrable_domain(name)
            patterns.add(domain if domain[-1].isdigit() else f"*.{domain}")  # an IPv4 address is its own
        else:
            patterns.add(name)
    return sorted(patterns)


def crawl_host_policy(spec: crawls_pb2.CrawlSpec) -> CrawlHostPolicy | None:
    """What a validated spec's politeness stores; None when it sets no limit."""
    politeness = spec.politeness
    policy = CrawlHostPolicy(
        patterns=policy_patterns(spec),
        max_concurrency=politeness.max_concurrency if politeness.HasField("max_concurrency") else None,
        delay_ms=round(politeness.delay.ToNanoseconds() / 1e6) if politeness.HasField("delay") else None,
        obey_robots=politeness.obey_robots if politeness.HasField("obey_robots") else None,
    )
    if policy.max_concurrency is None and policy.delay_ms is None and policy.obey_robots is None:
        return None
    return policy


# The longest delay between a host's requests a crawl may ask for without the admin role. The
# strictest running crawl's delay governs the host for every crawl and every job of it, so a
# longer one would let one producer starve everyone else's work on that host; 60 s is already
# one page a minute (and the ceiling polite crawlers' adaptive delays use).
PRODUCER_MAX_DELAY_MS = 60_000


def beyond_producer_limits(policy: CrawlHostPolicy) -> list[str]:
    """The politeness fields that tighten a host so far that only admins may ask for it."""
    return ["delay"] if policy.delay_ms is not None and policy.delay_ms > PRODUCER_MAX_DELAY_MS else []


def looser_than(policy: CrawlHostPolicy, defaults: Politeness) -> list[str]:
    """The politeness fields that loosen the fleet defaults (more concurrency, less delay,
    robots.txt ignored where the fleet obeys it): only admins may ask for them."""
    looser = []
    if policy.max_concurrency is not None and policy.max_concurrency > defaults.host_concurrency:
        looser.append("max_concurrency")
    if policy.delay_ms is not None and policy.delay_ms < round(defaults.host_delay_seconds * 1000):
        looser.append("delay")
    if policy.obey_robots is False and defaults.obey_robots:
        looser.append("obey_robots")
    return looser


def _without_port(host: str) -> str:
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdigit() and not host.endswith("]") else host
