"""The fleet's default politeness towards each host, and how hard failing hosts are backed off.

Flags under "politeness"; per-host policies set by operators (the Admin API, `crawlfleet hosts`)
override the limits for the hosts they match. Run every coordinator of a fleet with the same
values: each claim applies the defaults of the coordinator that runs it. docs/politeness.md
says why the defaults are what they are.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import NamedTuple

from crawlfleet.common.flags import EnvFlags, non_negative_float, positive_float, positive_int
from crawlfleet.common.robots import RobotsState

# At most two requests in flight and two starts a second per host: far gentler than a browser
# opening a page (six connections), and fast for broad crawls, where speed comes from many hosts.
DEFAULT_HOST_CONCURRENCY = 2
DEFAULT_HOST_DELAY_SECONDS = 0.5
DEFAULT_OBEY_ROBOTS = True
# A Crawl-delay above this is taken as this (some sites ask for minutes between requests).
DEFAULT_MAX_CRAWL_DELAY_SECONDS = 30.0
# RFC 9309: a cached robots.txt should not be used for more than 24 hours.
DEFAULT_ROBOTS_TTL_SECONDS = 24 * 3600.0
# The circuit breaker opens after this many host-level failures in a row (connection errors,
# timeouts, 5xx, 429), pausing the host for the initial backoff, doubled at each further failure.
DEFAULT_BREAKER_FAILURES = 3
DEFAULT_BACKOFF_INITIAL_SECONDS = 5.0
DEFAULT_BACKOFF_MAX_SECONDS = 600.0
# A Retry-After longer than this pauses the host only this long.
DEFAULT_MAX_PAUSE_SECONDS = 3600.0
# Adaptive delay, off by default: like Scrapy's AutoThrottle, a host's delay follows its response
# time divided by the concurrency it should sustain (1: one request at a time keeps it busy).
DEFAULT_ADAPTIVE_DELAY = False
DEFAULT_ADAPTIVE_TARGET_CONCURRENCY = 1.0
DEFAULT_ADAPTIVE_MAX_DELAY_SECONDS = 60.0
# A host found at its concurrency limit is looked at again after this long even if no lease of
# it reports an end (a lease that ends by expiry or cancellation frees its slot this way).
SATURATED_RECHECK_SECONDS = 1.0

# Failures that say something about the host rather than the page, by the class the hosts table
# counts them under: they feed the circuit breaker. A 404 or a page too large does not.
HOST_FAILURE_CLASSES = {
    "http_429": "429",
    "http_5xx": "5xx",
    "timeout": "error",
    "connect_error": "error",
    "connection_refused": "error",
    "dns_error": "error",
    "tls_error": "error",
    "transport_error": "error",
}


# Failure classes of a robots.txt fetch that got no usable answer without the server being down:
# the file is unavailable, as with a 4xx (RFC 9309 §2.3.1.3), and every URL may be fetched. Any other
# failure (timeouts, refused connections, DNS, TLS) leaves it unreachable: nothing may be fetched.
ROBOTS_UNAVAILABLE_ERRORS = frozenset({"too_many_redirects", "blocked_destination", "invalid_url"})


def robots_state_of(status_code: int, error_type: str) -> RobotsState:
    """What a robots.txt fetch means for its host (RFC 9309 §2.3.1): a 2xx has rules; a 4xx means
    none (allow all); a 5xx, or no answer, means unreachable (disallow all, retry after a pause).
    429 counts as unreachable, not as a 4xx: it says "too fast", and allowing everything at once
    would be the opposite of what it asks. A final 3xx (more redirects than followed) is unavailable."""
    if status_code == 0:
        return RobotsState.ALLOW_ALL if error_type in ROBOTS_UNAVAILABLE_ERRORS else RobotsState.UNREACHABLE
    if 200 <= status_code < 300:
        return RobotsState.RULES
    if status_code == 429 or status_code >= 500:
        return RobotsState.UNREACHABLE
    return RobotsState.ALLOW_ALL


# What paused a host: the text of hosts.pause_reason before its first ':'. An operator's pause
# (PauseHost) is "operator: <reason>"; the others are written by the failing statements.
OPERATOR_PAUSE = "operator"
PAUSE_REASON_CLASSES = (OPERATOR_PAUSE, "retry_after", "circuit_breaker", "robots_unreachable")
OTHER_PAUSE = "other"


def pause_reason_class(reason: str) -> str:
    """The class of a pause reason ("circuit_breaker: 3 failures in a row" -> "circuit_breaker");
    one of PAUSE_REASON_CLASSES, else "other"."""
    head = reason.partition(":")[0].strip()
    return head if head in PAUSE_REASON_CLASSES else OTHER_PAUSE


def operator_pause_reason(reason: str) -> str:
    return f"{OPERATOR_PAUSE}: {reason}" if reason else OPERATOR_PAUSE


class HostPenalty(NamedTuple):
    """What a failed attempt does to its host: its failure class (None: not the host's fault) and
    the pause the server asked for, in ms (None: none)."""

    failure: str | None
    asked_pause_ms: float | None


@dataclass(frozen=True, kw_only=True)
class Politeness:
    host_concurrency: int = DEFAULT_HOST_CONCURRENCY
    host_delay_seconds: float = DEFAULT_HOST_DELAY_SECONDS
    obey_robots: bool = DEFAULT_OBEY_ROBOTS
    max_crawl_delay_seconds: float = DEFAULT_MAX_CRAWL_DELAY_SECONDS
    robots_ttl_seconds: float = DEFAULT_ROBOTS_TTL_SECONDS
    breaker_failures: int = DEFAULT_BREAKER_FAILURES
    backoff_initial_seconds: float = DEFAULT_BACKOFF_INITIAL_SECONDS
    backoff_max_seconds: float = DEFAULT_BACKOFF_MAX_SECONDS
    max_pause_seconds: float = DEFAULT_MAX_PAUSE_SECONDS
    saturated_recheck_seconds: float = SATURATED_RECHECK_SECONDS
    adaptive_delay: bool = DEFAULT_ADAPTIVE_DELAY
    adaptive_target_concurrency: float = DEFAULT_ADAPTIVE_TARGET_CONCURRENCY
    adaptive_max_delay_seconds: float = DEFAULT_ADAPTIVE_MAX_DELAY_SECONDS

    def __post_init__(self) -> None:
        if self.backoff_max_seconds < self.backoff_initial_seconds:
            raise ValueError("--host-backoff-max-seconds must be at least --host-backoff-initial-seconds")

    def robots_delay_ms(self, crawl_delay_seconds: float | None) -> int | None:
        """A robots.txt Crawl-delay as the host's robots_delay_ms: capped at max_crawl_delay_seconds."""
        if crawl_delay_seconds is None:
            return None
        return round(min(crawl_delay_seconds, self.max_crawl_delay_seconds) * 1000)

    def penalty(self, error_type: str, retry_after_seconds: float | None, *, release: bool) -> HostPenalty:
        """A 429, or a 5xx with Retry-After, pauses the host (a 429 without one for the first
        backoff: it says "too fast" outright); host failures count towards the breaker."""
        failure = None if release else HOST_FAILURE_CLASSES.get(error_type)
        asked: float | None = None
        if failure in ("429", "5xx") and retry_after_seconds is not None:
            asked = min(retry_after_seconds, self.max_pause_seconds) * 1000
        elif failure == "429":
            asked = self.backoff_initial_seconds * 1000
        return HostPenalty(failure, asked)


def add_politeness_flags(flags: EnvFlags) -> None:
    """The ``politeness`` flags of ``crawlfleet-coordinator``."""
    flags.add(
        "--host-concurrency",
        DEFAULT_HOST_CONCURRENCY,
        "leases in flight at once per host, fleet-wide, unless a host policy says otherwise",
        type=positive_int,
    )
    flags.add(
        "--host-delay-seconds",
        DEFAULT_HOST_DELAY_SECONDS,
        "least time between two lease starts on one host, fleet-wide, unless a host policy says otherwise",
        type=non_negative_float,
    )
    flags.add_switch("--obey-robots", DEFAULT_OBEY_ROBOTS, "obey robots.txt unless a host policy says otherwise")
    flags.add(
        "--max-crawl-delay-seconds",
        DEFAULT_MAX_CRAWL_DELAY_SECONDS,
        "a robots.txt Crawl-delay above this counts as this",
        type=non_negative_float,
    )
    flags.add(
        "--robots-ttl-seconds", DEFAULT_ROBOTS_TTL_SECONDS, "how long a fetched robots.txt is used", type=positive_float
    )
    flags.add(
        "--host-breaker-failures",
        DEFAULT_BREAKER_FAILURES,
        "host-level failures in a row (connection errors, timeouts, 5xx, 429) that pause a host",
        type=positive_int,
    )
    flags.add(
        "--host-backoff-initial-seconds",
        DEFAULT_BACKOFF_INITIAL_SECONDS,
        "the first pause of a failing host; each further failure doubles it",
        type=positive_float,
    )
    flags.add(
        "--host-backoff-max-seconds",
        DEFAULT_BACKOFF_MAX_SECONDS,
        "the longest pause of a failing host",
        type=positive_float,
    )
    flags.add(
        "--host-max-pause-seconds",
        DEFAULT_MAX_PAUSE_SECONDS,
        "the longest pause a server's Retry-After can put on its host",
        type=positive_float,
    )
    add_adaptive_flags(flags)


def add_adaptive_flags(flags: EnvFlags) -> None:
    flags.add_switch(
        "--adaptive-delay",
        DEFAULT_ADAPTIVE_DELAY,
        "raise each host's delay to follow its response times (never below its configured delay)",
    )
    flags.add(
        "--adaptive-target-concurrency",
        DEFAULT_ADAPTIVE_TARGET_CONCURRENCY,
        "requests a host should have in flight on average under the adaptive delay",
        type=positive_float,
    )
    flags.add(
        "--adaptive-max-delay-seconds",
        DEFAULT_ADAPTIVE_MAX_DELAY_SECONDS,
        "the longest delay the adaptive delay sets",
        type=positive_float,
    )


def politeness_from_args(args: argparse.Namespace) -> Politeness:
    try:
        return Politeness(
            host_concurrency=args.host_concurrency,
            host_delay_seconds=args.host_delay_seconds,
            obey_robots=args.obey_robots,
            max_crawl_delay_seconds=args.max_crawl_delay_seconds,
            robots_ttl_seconds=args.robots_ttl_seconds,
            breaker_failures=args.host_breaker_failures,
            backoff_initial_seconds=args.host_backoff_initial_seconds,
            backoff_max_seconds=args.host_backoff_max_seconds,
            max_pause_seconds=args.host_max_pause_seconds,
            adaptive_delay=args.adaptive_delay,
            adaptive_target_concurrency=args.adaptive_target_concurrency,
            adaptive_max_delay_seconds=args.adaptive_max_delay_seconds,
        )
    except ValueError as exc:
        raise SystemExit(f"crawlfleet-coordinator: {exc}") from exc
