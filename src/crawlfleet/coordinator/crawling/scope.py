"""A crawl's rules for the links it finds: normalization, scope, URL patterns, depth.

Scopes compare a link with the crawl's seeds: the same host name (any port or scheme), the same
registrable domain by the Public Suffix List (its bundled snapshot: no network at run time), the
same origin (scheme, host, port), or anywhere. Patterns are globs on the normalized URL: `*`
matches any run of characters, `?` one character; a link must match an `allow` pattern (when
any is given) and no `deny` pattern.
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList

from crawlfleet.common.urls import InvalidURL, normalize_url
from crawlfleet.v1 import crawls_pb2


@functools.cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # the list the package ships; it never fetches one


def registrable_domain(hostname: str) -> str:
    """The domain a registrant controls (`shop.example.co.uk` for `img.shop.example.co.uk`); an
    IP address or a bare public suffix is its own."""
    name = hostname.strip("[]")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return _suffixes().privatesuffix(name) or name
    return name


def glob_pattern(glob: str) -> re.Pattern[str]:
    """A URL glob as a compiled pattern (no character classes: `[` is literal in URLs)."""
    return re.compile(fnmatch.translate(glob.replace("[", "[[]")))


@dataclass(frozen=True, slots=True)
class CrawlRules:
    scope: crawls_pb2.CrawlScope.ValueType
    seeds: tuple[str, ...]
    allow: tuple[re.Pattern[str], ...]
    deny: tuple[re.Pattern[str], ...]
    max_depth: int
    drop_tracking: bool
    sort_query: bool
    follow_only_selected: bool
    # What the scope compares, of each seed.
    seed_places: frozenset[str]

    @classmethod
    def of(cls, spec: crawls_pb2.CrawlSpec) -> CrawlRules:
        """The rules of a validated spec (its seeds normalized already)."""
        scope = spec.scope or crawls_pb2.CRAWL_SCOPE_SAME_HOSTNAME
        return cls(
            scope=scope,
            seeds=tuple(spec.seeds),
            allow=tuple(glob_pattern(g) for g in spec.allow),
            deny=tuple(glob_pattern(g) for g in spec.deny),
            max_depth=spec.max_depth,
            drop_tracking=spec.drop_tracking_parameters,
            sort_query=spec.sort_query,
            follow_only_selected=bool(spec.page.follow_selectors),
            seed_places=frozenset(_place(seed, scope) for seed in spec.seeds),
        )

    def normalize(self, url: str) -> str | None:
        """The crawl's form of a URL (its tracking and query options applied); None if invalid."""
        try:
            return normalize_url(url, drop_tracking=self.drop_tracking, sort_query=self.sort_query)
        except InvalidURL:
            return None

    def in_scope(self, url: str) -> bool:
        """Whether a normalized URL is within the crawl's scope and patterns."""
        return self._near_a_seed(url) and self._allowed(url)

    def _allowed(self, url: str) -> bool:
        if self.allow and not any(p.match(url) for p in self.allow):
            return False
        return not any(p.match(url) for p in self.deny)

    def _near_a_seed(self, url: str) -> bool:
        if self.scope == crawls_pb2.CRAWL_SCOPE_ALL:
            return True
        return _place(url, self.scope) in self.seed_places


def _place(url: str, scope: crawls_pb2.CrawlScope.ValueType) -> str:
    """What a scope compares of a normalized URL."""
    parts = urlsplit(url)
    hostname = parts.hostname or ""
    if scope == crawls_pb2.CRAWL_SCOPE_SAME_ORIGIN:
        return f"{parts.scheme}://{parts.netloc}"
    if scope == crawls_pb2.CRAWL_SCOPE_SAME_DOMAIN:
        return registrable_domain(hostname)
    return hostname


def invalid_globs(globs: Sequence[str]) -> list[int]:
    """Indexes of globs that cannot be patterns (empty, too long, control characters)."""
    return [i for i, g in enumerate(globs) if not g or len(g) > 2048 or any(ord(c) < 32 for c in g)]
