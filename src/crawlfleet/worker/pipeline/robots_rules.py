"""robots.txt rules as Scrapy's parser (Protego, RFC 9309) reads them, and the worker's small cache
of parsed rules, keyed by host and version (the fetch time the coordinator gives them)."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, NamedTuple

from crawlfleet.common import robots

if TYPE_CHECKING:
    from protego import Protego

# Parsed rules kept per worker: a broad crawl touches many hosts, and a big robots.txt parses into
# a few megabytes at worst, so the cache is bounded by count.
DEFAULT_CACHE_SIZE = 256


class RulesKey(NamedTuple):
    """One version of one host's rules: its fetch time in nanoseconds since the epoch."""

    host: str
    version_ns: int


class RobotsRules:
    """The rules of one robots.txt, for one user agent (matched as RFC 9309 says: by product token,
    case-insensitively, the most specific group first, else the `*` group)."""

    def __init__(self, parser: Protego, user_agent: str) -> None:
        self._parser = parser
        self.user_agent = user_agent

    @classmethod
    def parse(cls, body: bytes, user_agent: str) -> RobotsRules:
        """Rules from a robots.txt body: UTF-8 (a byte-order mark dropped, bad bytes replaced), only
        its first 500 KiB."""
        from protego import Protego  # here: only workers that meet robots.txt load the parser

        text = body[: robots.MAX_BODY_BYTES].decode("utf-8-sig", errors="replace")
        return cls(Protego.parse(text), user_agent)

    def allows(self, url: str) -> bool:
        """Whether our user agent may fetch `url` (an absolute URL of the rules' host)."""
        return bool(self._parser.can_fetch(url, self.user_agent))

    @property
    def crawl_delay(self) -> float | None:
        """The Crawl-delay of our group, in seconds; None when it gives none."""
        delay = self._parser.crawl_delay(self.user_agent)
        return None if delay is None else float(delay)


class RulesCache:
    """The most recently used parsed rules, at most `size` of them."""

    def __init__(self, size: int = DEFAULT_CACHE_SIZE) -> None:
        self._size = size
        self._rules: OrderedDict[RulesKey, RobotsRules] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rules)

    def get(self, key: RulesKey) -> RobotsRules | None:
        rules = self._rules.get(key)
        if rules is not None:
            self._rules.move_to_end(key)
        return rules

    def put(self, key: RulesKey, rules: RobotsRules) -> None:
        self._rules[key] = rules
        self._rules.move_to_end(key)
        while len(self._rules) > self._size:
            self._rules.popitem(last=False)
