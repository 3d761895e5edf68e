"""What a producer asks for: scrape jobs with their options, retry policies and job filters.

Each is a frozen keyword-only dataclass that becomes its API message with ``to_proto()``; fields
left None take the coordinator's (or the worker's) defaults. The coordinator validates the values
and answers ``InvalidArgument`` naming the offending field.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from google.protobuf import duration_pb2, timestamp_pb2

from crawlfleet.client.models import state_values
from crawlfleet.common.states import JobState
from crawlfleet.v1 import admin_pb2, jobs_pb2

RenderMode: TypeAlias = Literal["http", "browser", "auto"]
Seconds: TypeAlias = float | dt.timedelta
RENDER_MODES: dict[str, jobs_pb2.RenderMode.ValueType] = {
    "http": jobs_pb2.RENDER_MODE_HTTP,
    "browser": jobs_pb2.RENDER_MODE_BROWSER,
    "auto": jobs_pb2.RENDER_MODE_AUTO,
}


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How a job is retried: full-jitter backoff from ``initial_interval`` growing by
    ``backoff_coefficient`` up to ``maximum_interval``, ``maximum_attempts`` attempts in all."""

    initial_interval: Seconds | None = None
    backoff_coefficient: float | None = None
    maximum_interval: Seconds | None = None
    maximum_attempts: int | None = None

    def to_proto(self) -> jobs_pb2.RetryPolicy:
        policy = jobs_pb2.RetryPolicy()
        if self.initial_interval is not None:
            policy.initial_interval.CopyFrom(duration(self.initial_interval))
        if self.backoff_coefficient is not None:
            policy.backoff_coefficient = self.backoff_coefficient
        if self.maximum_interval is not None:
            policy.maximum_interval.CopyFrom(duration(self.maximum_interval))
        if self.maximum_attempts is not None:
            policy.maximum_attempts = self.maximum_attempts
        return policy


@dataclass(frozen=True, kw_only=True)
class Field:
    """A named value to extract from the page, stored with its result: by ``css`` selector (the
    element's whitespace-collapsed text, or the value of its ``attribute``) or by a ``json_ld`` path
    (dot-separated keys into the page's JSON-LD, e.g. ``offers.price``). The first value found, or
    every one with ``all``. Names are lower-case letters, digits and ``_``, starting with a letter."""

    name: str
    css: str | None = None
    json_ld: str | None = None
    attribute: str | None = None
    all: bool = False

    def to_proto(self) -> jobs_pb2.FieldSpec:
        if (self.css is None) == (self.json_ld is None):
            raise ValueError(f"field {self.name!r}: give one of css and json_ld")
        spec = jobs_pb2.FieldSpec(name=self.name, attribute=self.attribute or "", all=self.all)
        if self.css is not None:
            spec.css = self.css
        else:
            spec.json_ld = self.json_ld or ""
        return spec


@dataclass(frozen=True, kw_only=True)
class ScrapeJob:
    """One URL to scrape, with the options of its job.

    By default a scrape job deduplicates on its normalized URL: enqueuing a URL that has a live
    (queued or leased) job returns that job. Give each job its own ``idempotency_key`` to have
    separate jobs for one URL (the key then deduplicates instead).
    """

    url: str
    # http (the default), browser (JavaScript pages) or auto (browser when the page needs it).
    render: RenderMode | None = None
    idempotency_key: str | None = None
    # 0 to 100; higher leases first.
    priority: int | None = None
    # Not leased before this time; a datetime without a zone is local time.
    run_at: dt.datetime | None = None
    retry: RetryPolicy | None = None
    # Total time allowed for the fetch.
    timeout: Seconds | None = None
    skip_images: bool = False
    max_images: int | None = None
    # Named values to extract, stored with the result (see Field).
    fields: Sequence[Field] = ()
    # CSS selectors of the parts of the page whose links are marked followed (none: every link).
    follow_selectors: Sequence[str] = ()
    # Conditional GET with an earlier fetch's validators (its result's headers "etag" and
    # "last-modified"): an unchanged page completes as not_modified, without extraction or images.
    if_none_match: str | None = None
    if_modified_since: str | dt.datetime | None = None

    def to_proto(self) -> jobs_pb2.JobSpec:
        scrape = jobs_pb2.ScrapeSpec(
            url=self.url,
            skip_images=self.skip_images,
            fields=[field.to_proto() for field in self.fields],
            follow_selectors=list(self.follow_selectors),
            if_none_match=self.if_none_match or "",
            if_modified_since=http_date(self.if_modified_since) if self.if_modified_since is not None else "",
        )
        if self.render is not None:
            if self.render not in RENDER_MODES:
                raise ValueError(f"render must be one of {', '.join(RENDER_MODES)}, not {self.render!r}")
            scrape.render = RENDER_MODES[self.render]
        if self.timeout is not None:
            scrape.timeout.CopyFrom(duration(self.timeout))
        if self.max_images is not None:
            scrape.max_images = self.max_images
        spec = jobs_pb2.JobSpec(scrape=scrape, idempotency_key=self.idempotency_key or "")
        if self.priority is not None:
            spec.priority = self.priority
        if self.run_at is not None:
            spec.run_at.CopyFrom(timestamp(self.run_at))
        if self.retry is not None:
            spec.retry_policy.CopyFrom(self.retry.to_proto())
        return spec


# What enqueue takes: a URL (a scrape job with the defaults), a ScrapeJob, or any JobSpec message.
JobLike: TypeAlias = str | ScrapeJob | jobs_pb2.JobSpec


def job_spec(job: JobLike) -> jobs_pb2.JobSpec:
    """The ``JobSpec`` message of what a caller passed to enqueue."""
    if isinstance(job, str):
        return jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url=job))
    if isinstance(job, ScrapeJob):
        return job.to_proto()
    if isinstance(job, jobs_pb2.JobSpec):
        return job
    raise TypeError(f"cannot enqueue a {type(job).__name__}: give a URL, a ScrapeJob or a JobSpec")


@dataclass(frozen=True, kw_only=True)
class JobFilter:
    """Which jobs to list or requeue; fields left unset do not filter."""

    # JobStates, or their names: queued, leased, succeeded, dead, cancelled, skipped.
    states: Sequence[JobState | str] = ()
    # scrape, sitemap or noop.
    kind: str | None = None
    # Normalized target URLs starting with this.
    url_prefix: str | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    # Jobs whose last error has this type (e.g. http_5xx, timeout).
    error_type: str | None = None

    def to_proto(self) -> admin_pb2.JobFilter:
        flt = admin_pb2.JobFilter(
            states=state_values(self.states),
            kind=self.kind or "",
            url_prefix=self.url_prefix or "",
            error_type=self.error_type or "",
        )
        if self.created_after is not None:
            flt.created_after.CopyFrom(timestamp(self.created_after))
        if self.created_before is not None:
            flt.created_before.CopyFrom(timestamp(self.created_before))
        return flt


def http_date(value: str | dt.datetime) -> str:
    """An HTTP date (``Sun, 06 Nov 1994 08:49:37 GMT``); a string is taken as one already, a
    datetime without a zone is local time."""
    if isinstance(value, str):
        return value
    moment = value if value.tzinfo is not None else value.astimezone()
    return email.utils.format_datetime(moment.astimezone(dt.UTC), usegmt=True)


def duration(value: Seconds) -> duration_pb2.Duration:
    """Seconds (or a timedelta) as a ``google.protobuf.Duration``."""
    seconds = value.total_seconds() if isinstance(value, dt.timedelta) else value
    result = duration_pb2.Duration()
    result.FromNanoseconds(round(seconds * 1e9))
    return result


def timestamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    """A datetime as a ``google.protobuf.Timestamp``; without a zone it is local time."""
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value if value.tzinfo is not None else value.astimezone())
    return result
