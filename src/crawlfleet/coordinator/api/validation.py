"""Checks Enqueue requests and turns each JobSpec into the row the queue inserts."""

from __future__ import annotations

import datetime as dt

from google.protobuf import duration_pb2

from crawlfleet.common import result_limits
from crawlfleet.common.hosts import host_of
from crawlfleet.common.urls import InvalidURL, normalize_url
from crawlfleet.coordinator.api.scrape_options import check_scrape_options
from crawlfleet.coordinator.errors import InvalidArgument
from crawlfleet.coordinator.settings import CoordinatorSettings
from crawlfleet.coordinator.storage.rows import NewJob
from crawlfleet.v1 import jobs_pb2

MAX_IDEMPOTENCY_KEY_LENGTH = 200
MAX_PRIORITY = 100
MAX_SCRAPE_TIMEOUT_SECONDS = 600
MAX_NOOP_DURATION_SECONDS = 3600
MAX_ATTEMPTS_LIMIT = 1000
MAX_RETRY_INTERVAL_SECONDS = 7 * 24 * 3600
KINDS = ("scrape", "sitemap", "noop")
_RENDER_MODES = frozenset(jobs_pb2.RenderMode.values())


def normalize_target_url(raw: str, field: str) -> str:
    """The job's target URL: `raw` in the form every spelling of the resource shares (dedupe and exclusivity)."""
    if not raw:
        raise InvalidArgument(field, "is required")
    try:
        return normalize_url(raw)
    except InvalidURL as exc:
        raise InvalidArgument(field, exc.reason) from None


def _seconds(duration: duration_pb2.Duration) -> float:
    return duration.seconds + duration.nanos / 1e9


def _check_range(field: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise InvalidArgument(field, f"must be between {low:g} and {high:g}, got {value:g}")


def _retry_columns(spec: jobs_pb2.JobSpec, field: str, settings: CoordinatorSettings) -> tuple[int, int, float, int]:
    """(max_attempts, initial_ms, multiplier, max_ms), request values over defaults."""
    defaults = settings.retry
    initial = defaults.initial_seconds
    maximum = defaults.max_seconds
    multiplier = defaults.multiplier
    attempts = defaults.max_attempts
    if spec.HasField("retry_policy"):
        policy = spec.retry_policy
        if policy.HasField("initial_interval"):
            initial = _seconds(policy.initial_interval)
            _check_range(f"{field}.retry_policy.initial_interval", initial, 0, MAX_RETRY_INTERVAL_SECONDS)
        if policy.HasField("maximum_interval"):
            maximum = _seconds(policy.maximum_interval)
            _check_range(f"{field}.retry_policy.maximum_interval", maximum, 0, MAX_RETRY_INTERVAL_SECONDS)
        if policy.backoff_coefficient:
            multiplier = policy.backoff_coefficient
            _check_range(f"{field}.retry_policy.backoff_coefficient", multiplier, 1, 100)
        if policy.maximum_attempts:
            attempts = policy.maximum_attempts
            _check_range(f"{field}.retry_policy.maximum_attempts", attempts, 1, MAX_ATTEMPTS_LIMIT)
    if maximum < initial:
        raise InvalidArgument(f"{field}.retry_policy.maximum_interval", "must not be below initial_interval")
    return attempts, round(initial * 1000), multiplier, round(maximum * 1000)


def owned_dedupe_key(key: str, owner: str | None) -> str:
    """The dedupe key of an owner's job: two owners never dedupe onto each other's jobs.

    Owner names hold no ':' (security/auth.py), so the owner's part ends at the first one.
    """
    return key if owner is None else f"owner:{owner}:{key}"


def validate_job(spec: jobs_pb2.JobSpec, field: str, settings: CoordinatorSettings, owner: str | None = None) -> NewJob:
    """Check one JobSpec (at request path `field`) and build its row for `owner`; raise InvalidArgument."""
    kind = spec.WhichOneof("payload")
    target_url: str | None = None
    if kind not in KINDS:
        raise InvalidArgument(f"{field}.payload", f"set one job kind: {', '.join(KINDS)} (unknown or missing kind)")
    if kind == "scrape":
        target_url = normalize_target_url(spec.scrape.url, f"{field}.scrape.url")
        if spec.scrape.HasField("timeout"):
            timeout = _seconds(spec.scrape.timeout)
            _check_range(f"{field}.scrape.timeout", timeout, 0.001, MAX_SCRAPE_TIMEOUT_SECONDS)
        if spec.scrape.render not in _RENDER_MODES:
            raise InvalidArgument(f"{field}.scrape.render", f"unknown render mode {spec.scrape.render}")
        check_scrape_options(spec.scrape, f"{field}.scrape")
    elif kind == "sitemap":
        target_url = normalize_target_url(spec.sitemap.url, f"{field}.sitemap.url")
        _check_range(f"{field}.sitemap.max_urls", spec.sitemap.max_urls, 0, result_limits.MAX_SITEMAP_ENTRIES)
    elif kind == "noop":
        if spec.noop.HasField("duration"):
            duration = _seconds(spec.noop.duration)
            _check_range(f"{field}.noop.duration", duration, 0, MAX_NOOP_DURATION_SECONDS)
        if spec.noop.url:
            target_url = normalize_target_url(spec.noop.url, f"{field}.noop.url")
    _check_range(f"{field}.priority", spec.priority, 0, MAX_PRIORITY)
    key = spec.idempotency_key
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidArgument(f"{field}.idempotency_key", f"is longer than {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
    if key:
        dedupe_key: str | None = f"key:{key}"
    elif target_url is None:
        dedupe_key = None
    else:
        # A sitemap job and a scrape job of one URL are different work: neither dedupes onto the other.
        dedupe_key = f"sitemap:{target_url}" if kind == "sitemap" else f"url:{target_url}"
    if dedupe_key is not None:
        dedupe_key = owned_dedupe_key(dedupe_key, owner)
    run_at = None
    if spec.HasField("run_at"):
        try:
            run_at = spec.run_at.ToDatetime(tzinfo=dt.UTC)
        except (ValueError, OverflowError):
            raise InvalidArgument(f"{field}.run_at", "is not a valid timestamp") from None
    attempts, initial_ms, multiplier, max_ms = _retry_columns(spec, field, settings)
    encoded = spec.SerializeToString(deterministic=True)  # comparable with a live twin's spec
    if len(encoded) > settings.max_spec_bytes:
        raise InvalidArgument(field, f"is {len(encoded)} bytes encoded; the limit is {settings.max_spec_bytes}")
    # Positional: keywords cost a NamedTuple a good part of its construction, once per job.
    return NewJob(
        kind,
        spec.priority,
        encoded,
        target_url,
        dedupe_key,
        run_at,
        attempts,
        initial_ms,
        multiplier,
        max_ms,
        host_of(target_url) if target_url else None,
    )


def validate_enqueue(
    jobs: list[jobs_pb2.JobSpec], settings: CoordinatorSettings, *, owner: str | None = None
) -> list[NewJob]:
    """Check a whole batch for `owner`: the first bad job rejects the batch (nothing is inserted)."""
    if not jobs:
        raise InvalidArgument("jobs", "at least one job is required")
    if len(jobs) > settings.max_enqueue_batch:
        raise InvalidArgument("jobs", f"at most {settings.max_enqueue_batch} jobs per call, got {len(jobs)}")
    return [validate_job(spec, f"jobs[{i}]", settings, owner) for i, spec in enumerate(jobs)]


def options_differ(sent: bytes, live: bytes | None) -> bool:
    """Whether a live job found by dedupe keeps other options than a request gave (render mode,
    priority, retry policy, …): the same URL spelled another way does not count, since the target
    URL is the identity the two share."""
    if live is None:
        return False
    sent_spec, live_spec = jobs_pb2.JobSpec.FromString(sent), jobs_pb2.JobSpec.FromString(live)
    for spec in (sent_spec, live_spec):
        if spec.HasField("scrape"):
            spec.scrape.ClearField("url")
        elif spec.HasField("sitemap"):
            spec.sitemap.ClearField("url")
    return sent_spec != live_spec
