"""Bounds on every string and repeated field of the API's requests, checked in one walk.

The coordinator refuses a request that breaks a bound (``check``); the worker trims what it is
about to report so that it never does (``fit``). One table serves both, so they cannot drift.
Every string must also be storable in PostgreSQL, whose text columns cannot hold NUL, and every
Timestamp and Duration must be a well-formed one (nanos within a second, years 1 to 9999).
Documented in docs/queue-semantics.md ("API limits").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from crawlfleet.common import result_limits

NUL = "\x00"
# A field the table does not name: generous for identifiers and messages, far below what hurts.
DEFAULT_MAX_CHARS = 2048
DEFAULT_MAX_ITEMS = 1000
_NANOS_PER_SECOND = 1_000_000_000
# google.protobuf.Duration's own range (about 10,000 years) and Timestamp's (0001-01-01 to 9999-12-31).
_MAX_DURATION_SECONDS = 315_576_000_000
_MIN_TIMESTAMP_SECONDS = -62_135_596_800
_MAX_TIMESTAMP_SECONDS = 253_402_300_799


@dataclass(frozen=True)
class FieldLimit:
    """At most ``items`` entries (repeated and map fields) of at most ``chars`` characters each
    (strings; a map's values, its keys keep to ``key_chars``)."""

    chars: int = DEFAULT_MAX_CHARS
    items: int = DEFAULT_MAX_ITEMS
    key_chars: int = 256


# By full field name. Counts that a setting bounds (Enqueue's batch) are checked against the
# setting by the servicer; the figure here is the hard ceiling above any sane setting.
LIMITS: dict[str, FieldLimit] = {
    "crawlfleet.v1.EnqueueRequest.jobs": FieldLimit(items=100_000),
    "crawlfleet.v1.JobSpec.idempotency_key": FieldLimit(chars=200),
    # A spec's encoded size has a bound of its own (--max-spec-bytes); this is only the ceiling.
    "crawlfleet.v1.NoopSpec.fail_message": FieldLimit(chars=1_000_000),
    "crawlfleet.v1.WorkerInfo.worker_id": FieldLimit(chars=200),
    "crawlfleet.v1.WorkerInfo.host": FieldLimit(chars=255),
    "crawlfleet.v1.WorkerInfo.version": FieldLimit(chars=100),
    # A kind is a job kind's name (at most 32 characters); a worker handles a few of them.
    "crawlfleet.v1.WorkerInfo.kinds": FieldLimit(chars=32, items=32),
    "crawlfleet.v1.HeartbeatRequest.leases": FieldLimit(items=10_000),
    "crawlfleet.v1.LeaseRef.lease_token": FieldLimit(chars=64),
    "crawlfleet.v1.CompletedJob.lease_token": FieldLimit(chars=64),
    "crawlfleet.v1.FailRequest.lease_token": FieldLimit(chars=64),
    "crawlfleet.v1.FailRequest.error_type": FieldLimit(chars=100),
    # Longer messages are cut to 4096 characters by Fail rather than refused.
    "crawlfleet.v1.FailRequest.error_message": FieldLimit(chars=65_536),
    "crawlfleet.v1.ReportRobotsRequest.lease_token": FieldLimit(chars=64),
    "crawlfleet.v1.ReportRobotsRequest.host": FieldLimit(chars=255),
    "crawlfleet.v1.ReportRobotsRequest.error_type": FieldLimit(chars=100),
    "crawlfleet.v1.ReportRobotsRequest.error_message": FieldLimit(chars=65_536),
    "crawlfleet.v1.GetRobotsRequest.host": FieldLimit(chars=255),
    "crawlfleet.v1.WatchJobsRequest.job_ids": FieldLimit(items=100_000),
    "crawlfleet.v1.RequeueDeadJobsRequest.job_ids": FieldLimit(items=10_000),
    "crawlfleet.v1.ListResultsRequest.page_token": FieldLimit(chars=20),
    "crawlfleet.v1.ListJobsRequest.page_token": FieldLimit(chars=20),
    "crawlfleet.v1.GetThumbnailRequest.sha256": FieldLimit(chars=64),
    "crawlfleet.v1.FindStoredImagesRequest.sha256s": FieldLimit(chars=64, items=1000),
    # Hosts and host patterns are at most 255 characters (common/hosts.py); so are the page
    # tokens that stand for them. Notes and pause reasons are shown to operators.
    "crawlfleet.v1.ListHostsRequest.host_prefix": FieldLimit(chars=255),
    "crawlfleet.v1.ListHostsRequest.page_token": FieldLimit(chars=255),
    "crawlfleet.v1.GetHostRequest.host": FieldLimit(chars=255),
    "crawlfleet.v1.SetHostPolicyRequest.pattern": FieldLimit(chars=255),
    "crawlfleet.v1.SetHostPolicyRequest.note": FieldLimit(chars=500),
    "crawlfleet.v1.ClearHostPolicyRequest.pattern": FieldLimit(chars=255),
    "crawlfleet.v1.ListHostPoliciesRequest.page_token": FieldLimit(chars=255),
    "crawlfleet.v1.PauseHostRequest.host": FieldLimit(chars=255),
    "crawlfleet.v1.PauseHostRequest.reason": FieldLimit(chars=500),
    "crawlfleet.v1.ResumeHostRequest.host": FieldLimit(chars=255),
    # A scrape result: what a page holds. The sizes shared with the result caps (main text, links,
    # images) come from result_limits, so the two checks never disagree.
    "crawlfleet.v1.ScrapeResult.final_url": FieldLimit(chars=8192),
    "crawlfleet.v1.ScrapeResult.canonical_url": FieldLimit(chars=8192),
    "crawlfleet.v1.ScrapeResult.title": FieldLimit(chars=4096),
    "crawlfleet.v1.ScrapeResult.meta_description": FieldLimit(chars=8192),
    "crawlfleet.v1.ScrapeResult.main_text": FieldLimit(chars=result_limits.MAX_MAIN_TEXT_BYTES),
    "crawlfleet.v1.ScrapeResult.redirects": FieldLimit(items=50),
    "crawlfleet.v1.ScrapeResult.links": FieldLimit(items=result_limits.MAX_LINKS),
    "crawlfleet.v1.ScrapeResult.image_urls": FieldLimit(chars=8192, items=result_limits.MAX_IMAGE_URLS),
    "crawlfleet.v1.ScrapeResult.json_ld": FieldLimit(chars=1_000_000, items=100),
    "crawlfleet.v1.ScrapeResult.open_graph": FieldLimit(chars=8192, items=200),
    "crawlfleet.v1.ScrapeResult.headers": FieldLimit(chars=8192, items=100),
    "crawlfleet.v1.ScrapeResult.images": FieldLimit(items=result_limits.MAX_IMAGES),
    "crawlfleet.v1.ScrapeResult.fields": FieldLimit(items=result_limits.MAX_FIELDS),
    "crawlfleet.v1.ScrapeResult.content_sha256": FieldLimit(chars=64),
    "crawlfleet.v1.FieldValue.name": FieldLimit(chars=64),
    # A value's bound in bytes (checked with the result caps) is also one in characters.
    "crawlfleet.v1.FieldValue.values": FieldLimit(
        chars=result_limits.MAX_FIELD_VALUE_BYTES, items=result_limits.MAX_FIELD_VALUES
    ),
    "crawlfleet.v1.Redirect.url": FieldLimit(chars=8192),
    "crawlfleet.v1.Link.url": FieldLimit(chars=8192),
    "crawlfleet.v1.Link.text": FieldLimit(chars=1000),
    "crawlfleet.v1.ImageResult.url": FieldLimit(chars=8192),
    "crawlfleet.v1.ImageResult.error_message": FieldLimit(chars=4096),
    "crawlfleet.v1.ImageResult.thumbnails": FieldLimit(items=16),
    # A sitemap result: the URLs of a site's sitemaps (as long as a job's target URL may be), the
    # sitemaps read, and why others were not.
    "crawlfleet.v1.SitemapResult.entries": FieldLimit(items=result_limits.MAX_SITEMAP_ENTRIES),
    "crawlfleet.v1.SitemapResult.errors": FieldLimit(chars=4096),
}
_DEFAULT = FieldLimit()


class LimitExceeded(ValueError):
    """A field breaks its bound; ``field`` is its path in the request, e.g. ``jobs[3].result.scrape.title``.
    ``job_id`` is the job of the message it sits in, when it sits in one that names a job."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.job_id: int | None = None


def limit_of(field: FieldDescriptor) -> FieldLimit:
    return LIMITS.get(field.full_name, _DEFAULT)


def check(message: Message, path: str = "") -> None:
    """Raise ``LimitExceeded`` for the first field of ``message`` (recursively) that breaks its bound."""
    try:
        _check_message(message)
    except _Breach as breach:
        error = LimitExceeded(_join(path, breach.path()), breach.message)
        error.job_id = breach.job_id
        raise error from None


# The walk runs on every request (a Complete of 100 jobs visits some 400 fields): it builds no
# path string and looks nothing up by name until a field breaks its bound, and each field's
# limit and shape is worked out once per process.


class _Breach(Exception):
    """A bound broken somewhere below; the walk adds each step of the path as it unwinds."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.steps: list[str] = []  # innermost first
        self.job_id: int | None = None

    def path(self) -> str:
        return "".join(reversed(self.steps)).removeprefix(".")


_MAP, _REPEATED, _SINGLE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class _FieldPlan:
    name: str
    shape: int
    limit: FieldLimit
    # Whether a value of the field can break a bound at all: a message with no string, repeated,
    # map, Timestamp or Duration field anywhere below (NoopResult) cannot, and is not walked.
    bounded: bool


_PLANS: dict[FieldDescriptor, _FieldPlan] = {}


def _plan(field: FieldDescriptor) -> _FieldPlan:
    plan = _PLANS.get(field)
    if plan is None:
        shape = _MAP if _is_map(field) else _REPEATED if field.is_repeated else _SINGLE
        bounded = shape != _SINGLE or field.message_type is None or _may_breach(field.message_type)
        plan = _PLANS[field] = _FieldPlan(field.name, shape, limit_of(field), bounded)
    return plan


def _may_breach(message_type: Descriptor, seen: frozenset[str] = frozenset()) -> bool:
    if message_type.full_name in _WELL_KNOWN:
        return True
    if message_type.full_name in seen:  # a recursive type: what it holds is being looked at already
        return False
    below = seen | {message_type.full_name}
    return any(
        field.is_repeated
        or field.type == FieldDescriptor.TYPE_STRING
        or (field.message_type is not None and _may_breach(field.message_type, below))
        for field in message_type.fields
    )


def _check_message(message: Message) -> None:
    special = _WELL_KNOWN.get(message.DESCRIPTOR.full_name)
    if special is not None:
        special(message)
        return
    for field, value in message.ListFields():
        plan = _plan(field)
        try:
            if plan.shape == _SINGLE:
                if isinstance(value, str):
                    _text(value, plan.limit.chars)
                elif isinstance(value, Message) and plan.bounded:
                    _check_nested(value)
            elif plan.shape == _REPEATED:
                _repeated(value, plan.limit)
            else:
                _map(value, plan.limit)
        except _Breach as breach:
            breach.steps.append("." + plan.name)
            raise


def _repeated(values: Sequence[object], limit: FieldLimit) -> None:
    if len(values) > limit.items:
        raise _Breach(f"has {len(values)} items; at most {limit.items} are allowed")
    for i, item in enumerate(values):
        try:
            if isinstance(item, str):
                _text(item, limit.chars)
            elif isinstance(item, Message):
                _check_nested(item)
        except _Breach as breach:
            breach.steps.append(f"[{i}]")
            raise


def _map(values: Mapping[object, object], limit: FieldLimit) -> None:
    if len(values) > limit.items:
        raise _Breach(f"has {len(values)} entries; at most {limit.items} are allowed")
    for key, item in values.items():
        try:
            if isinstance(key, str):
                _text(key, limit.key_chars)
            if isinstance(item, str):
                _text(item, limit.chars)
            elif isinstance(item, Message):
                _check_nested(item)
        except _Breach as breach:
            breach.steps.append(f"[{key[:40]!r}]" if isinstance(key, str) else f"[{key!r}]")
            raise


def _check_nested(message: Message) -> None:
    try:
        _check_message(message)
    except _Breach as breach:
        # The error names the job of the innermost message that names one.
        if breach.job_id is None and "job_id" in message.DESCRIPTOR.fields_by_name:
            breach.job_id = getattr(message, "job_id")  # noqa: B009 - any message with a job_id field
        raise


def _text(text: str, chars: int) -> None:
    if len(text) > chars:
        raise _Breach(f"is {len(text)} characters; at most {chars} are allowed")
    if NUL in text:
        raise _Breach("holds a NUL character, which cannot be stored")


def _timestamp(ts: Message) -> None:
    assert isinstance(ts, timestamp_pb2.Timestamp)
    if not _MIN_TIMESTAMP_SECONDS <= ts.seconds <= _MAX_TIMESTAMP_SECONDS:
        raise _Breach("is not a time between the years 1 and 9999")
    if not 0 <= ts.nanos < _NANOS_PER_SECOND:
        raise _Breach("nanos must be between 0 and 999999999")


def _duration(d: Message) -> None:
    assert isinstance(d, duration_pb2.Duration)
    if abs(d.seconds) > _MAX_DURATION_SECONDS:
        raise _Breach("is longer than a Duration can be")
    if abs(d.nanos) >= _NANOS_PER_SECOND or (d.seconds and d.nanos and (d.seconds < 0) != (d.nanos < 0)):
        raise _Breach("nanos must be below a second and of the same sign as seconds")


_WELL_KNOWN: dict[str, Callable[[Message], None]] = {
    timestamp_pb2.Timestamp.DESCRIPTOR.full_name: _timestamp,
    duration_pb2.Duration.DESCRIPTOR.full_name: _duration,
}


def fit(message: Message) -> None:
    """Trim ``message`` in place to the bounds: NUL removed from strings, strings cut, extra items dropped.

    Only what breaks a bound is rewritten: a worker fits every result it reports, nearly all of them
    within bounds already, and assigning each string and list item back copied them all for nothing.
    """
    for field, value in message.ListFields():
        plan = _plan(field)
        limit = plan.limit
        if plan.shape == _MAP:
            _fit_map(value, limit)
        elif plan.shape == _REPEATED:
            if len(value) > limit.items:
                del value[limit.items :]
            for i, item in enumerate(value):
                if isinstance(item, str):
                    if _breaks(item, limit.chars):
                        value[i] = _fit_text(item, limit.chars)
                elif isinstance(item, Message):
                    fit(item)
        elif isinstance(value, str):
            if _breaks(value, limit.chars):
                setattr(message, field.name, _fit_text(value, limit.chars))
        elif isinstance(value, Message) and plan.bounded:
            fit(value)


def _fit_map(values: MutableMapping[object, object], limit: FieldLimit) -> None:
    if len(values) > limit.items:
        for key in list(values)[limit.items :]:
            del values[key]
    rekeyed: list[object] = []
    for key, item in values.items():
        if isinstance(item, Message):
            fit(item)  # kept under its key: a message map's entries cannot be assigned
            continue
        key_breaks = isinstance(key, str) and _breaks(key, limit.key_chars)
        if key_breaks or (isinstance(item, str) and _breaks(item, limit.chars)):
            rekeyed.append(key)
    for key in rekeyed:  # not while iterating: a fitted entry may change its key
        item = values.pop(key)
        fitted_key = _fit_text(key, limit.key_chars) if isinstance(key, str) else key
        values.setdefault(fitted_key, _fit_text(item, limit.chars) if isinstance(item, str) else item)


def _breaks(text: str, chars: int) -> bool:
    return len(text) > chars or NUL in text


def _fit_text(text: str, chars: int) -> str:
    return text.replace(NUL, "")[:chars]


def _is_map(field: FieldDescriptor) -> bool:
    message_type = field.message_type
    return message_type is not None and message_type.GetOptions().map_entry


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
