"""Checks a StartCrawl request and fills in the coordinator's defaults."""

from __future__ import annotations

from crawlfleet.coordinator.api import convert
from crawlfleet.coordinator.api.hosts_convert import MAX_POLICY_CONCURRENCY, MAX_POLICY_DELAY_SECONDS
from crawlfleet.coordinator.api.validation import normalize_target_url, validate_job
from crawlfleet.coordinator.crawling.host_policies import (
    PRODUCER_MAX_DELAY_MS,
    beyond_producer_limits,
    crawl_host_policy,
    looser_than,
)
from crawlfleet.coordinator.crawling.scope import CrawlRules, invalid_globs
from crawlfleet.coordinator.errors import InvalidArgument, PermissionDenied
from crawlfleet.coordinator.politeness import Politeness
from crawlfleet.coordinator.security.principal import Principal, Role
from crawlfleet.coordinator.settings import CoordinatorSettings
from crawlfleet.coordinator.storage.crawls import CrawlLimits
from crawlfleet.v1 import crawls_pb2, jobs_pb2

MAX_SEEDS = 1000
MAX_PATTERNS = 50
DEFAULT_MAX_DEPTH = 3
MAX_DEPTH = 1000
DEFAULT_MAX_PAGES = 10_000
MAX_PAGES = 10_000_000
DEFAULT_MAX_QUERY_VARIANTS = 100


def validate_crawl(
    spec: crawls_pb2.CrawlSpec, field: str, settings: CoordinatorSettings
) -> tuple[crawls_pb2.CrawlSpec, CrawlLimits]:
    """The spec as stored (seeds normalized, defaults filled in) and its limits; raises
    InvalidArgument naming the field at fault."""
    checked = crawls_pb2.CrawlSpec()
    checked.CopyFrom(spec)
    if not spec.seeds:
        raise InvalidArgument(f"{field}.seeds", "at least one seed URL is required")
    if len(spec.seeds) > MAX_SEEDS:
        raise InvalidArgument(f"{field}.seeds", f"at most {MAX_SEEDS} seeds")
    if spec.scope not in crawls_pb2.CrawlScope.values():
        raise InvalidArgument(f"{field}.scope", f"unknown scope {spec.scope}")
    for name, globs in (("allow", spec.allow), ("deny", spec.deny)):
        if len(globs) > MAX_PATTERNS:
            raise InvalidArgument(f"{field}.{name}", f"at most {MAX_PATTERNS} patterns")
        for index in invalid_globs(globs):
            raise InvalidArgument(f"{field}.{name}[{index}]", "must be a URL glob of 1 to 2048 printable characters")
    max_depth = spec.max_depth if spec.HasField("max_depth") else DEFAULT_MAX_DEPTH
    checked.max_depth = _bounded(max_depth, f"{field}.max_depth", 0, MAX_DEPTH)
    checked.max_pages = _bounded(spec.max_pages or DEFAULT_MAX_PAGES, f"{field}.max_pages", 1, MAX_PAGES)
    checked.max_pages_per_host = _bounded(
        spec.max_pages_per_host or checked.max_pages, f"{field}.max_pages_per_host", 1, MAX_PAGES
    )
    checked.max_query_variants = _bounded(
        spec.max_query_variants or DEFAULT_MAX_QUERY_VARIANTS, f"{field}.max_query_variants", 1, MAX_PAGES
    )
    _check_politeness(spec.politeness, f"{field}.politeness")
    if not checked.page.render:
        checked.page.render = jobs_pb2.RENDER_MODE_HTTP
    rules = CrawlRules.of(checked)
    seeds = []
    for index, raw in enumerate(spec.seeds):
        url = rules.normalize(raw)
        if url is None:
            normalize_target_url(raw, f"{field}.seeds[{index}]")  # raises, saying why
            raise InvalidArgument(f"{field}.seeds[{index}]", "is not a URL a crawl can start from")
        seeds.append(url)
    del checked.seeds[:]
    checked.seeds.extend(seeds)
    # Each page job is a scrape job like any other: the queue's checks apply to its options.
    template = jobs_pb2.JobSpec(scrape=checked.page, priority=checked.priority)
    template.scrape.url = seeds[0]
    if checked.HasField("retry_policy"):
        template.retry_policy.CopyFrom(checked.retry_policy)
    try:
        job = validate_job(template, field, settings)
    except InvalidArgument as exc:
        raise InvalidArgument(_page_field(exc.field, field), exc.message.removeprefix(f"{exc.field}: ")) from None
    checked.page.ClearField("url")
    limits = CrawlLimits(
        max_depth=checked.max_depth,
        max_pages=checked.max_pages,
        max_pages_per_host=checked.max_pages_per_host,
        max_query_variants=checked.max_query_variants,
        priority=job.priority,
        max_attempts=job.max_attempts,
        retry_initial_ms=job.retry_initial_ms,
        retry_multiplier=job.retry_multiplier,
        retry_max_ms=job.retry_max_ms,
    )
    return checked, limits


def _check_politeness(politeness: crawls_pb2.CrawlPoliteness, field: str) -> None:
    """The bounds of a host policy's limits (as SetHostPolicy has them)."""
    if politeness.HasField("max_concurrency"):
        _bounded(politeness.max_concurrency, f"{field}.max_concurrency", 1, MAX_POLICY_CONCURRENCY)
    if politeness.HasField("delay"):
        convert.optional_seconds(
            politeness.delay, True, f"{field}.delay", default=0.0, maximum=MAX_POLICY_DELAY_SECONDS
        )


def check_politeness_role(
    spec: crawls_pb2.CrawlSpec, field: str, defaults: Politeness, principal: Principal | None
) -> None:
    """Raises PermissionDenied naming the first politeness field that loosens the fleet defaults,
    or tightens them past what a producer may ask, unless the caller is an admin (or auth is
    off): a crawl's limits apply to every job of its hosts, not only to its own, so only those
    who may set host policies may relax them or hold a host back for everyone."""
    policy = crawl_host_policy(spec)
    if policy is None or principal is None or principal.role is Role.ADMIN:
        return
    for name in looser_than(policy, defaults):
        path = f"{field}.politeness.{name}"
        raise PermissionDenied(
            f"{path}: looser than the fleet default; only the admin role may loosen politeness "
            "(tightening it is allowed)",
            metadata={"field": path, "role": str(principal.role)},
        )
    for name in beyond_producer_limits(policy):
        path = f"{field}.politeness.{name}"
        raise PermissionDenied(
            f"{path}: longer than {PRODUCER_MAX_DELAY_MS // 1000} s; it would hold back every crawl of "
            "the host, so only the admin role may ask for it",
            metadata={"field": path, "role": str(principal.role)},
        )


def _bounded(value: int, field: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidArgument(field, f"must be between {low} and {high}")
    return value


def _page_field(path: str, field: str) -> str:
    """A job field's path as the crawl spec names it (`spec.scrape.timeout` → `spec.page.timeout`)."""
    return path.replace(f"{field}.scrape", f"{field}.page", 1)
