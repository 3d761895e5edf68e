"""The Python client of a crawlfleet coordinator, for producers and operators (see docs/client.md).

``Client`` blocks; ``AsyncClient`` has the same methods as coroutines. Both enqueue jobs (one or
many, in batches), wait for many jobs over one stream, start, follow and cancel crawls, page
through jobs and results, cancel, requeue and purge, and see and steer how the fleet treats each
host (policies, pause, resume). Every error they raise on purpose is a ``ClientError``.
"""

from crawlfleet.client.async_client import AsyncClient
from crawlfleet.client.crawl_specs import CrawlLike, CrawlScope, CrawlSpec
from crawlfleet.client.crawls import CancelledCrawl, CrawlPage, CrawlState, StartedCrawl
from crawlfleet.client.errors import (
    ClientError,
    ConfigurationError,
    Conflict,
    CrawlWaitTimeout,
    DeadlineExceeded,
    InvalidArgument,
    JobsNotFound,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    WaitTimeout,
)
from crawlfleet.client.models import (
    EnqueuedJob,
    FieldValue,
    HostPage,
    HostPolicyChange,
    HostPolicyPage,
    JobOutcome,
    JobPage,
    PurgeCounts,
    QueueStats,
    ResultPage,
    WatchUpdate,
    field_values,
)
from crawlfleet.client.settings import ClientSettings, settings_from_env
from crawlfleet.client.specs import Field, JobFilter, JobLike, RenderMode, RetryPolicy, ScrapeJob
from crawlfleet.client.sync_client import Client
from crawlfleet.common.states import JobState

__all__ = [
    "AsyncClient",
    "CancelledCrawl",
    "Client",
    "ClientError",
    "ClientSettings",
    "ConfigurationError",
    "Conflict",
    "CrawlLike",
    "CrawlPage",
    "CrawlScope",
    "CrawlSpec",
    "CrawlState",
    "CrawlWaitTimeout",
    "DeadlineExceeded",
    "EnqueuedJob",
    "Field",
    "FieldValue",
    "HostPage",
    "HostPolicyChange",
    "HostPolicyPage",
    "InvalidArgument",
    "JobFilter",
    "JobLike",
    "JobOutcome",
    "JobPage",
    "JobState",
    "JobsNotFound",
    "NotFound",
    "PermissionDenied",
    "PurgeCounts",
    "QueueStats",
    "RenderMode",
    "ResourceExhausted",
    "ResultPage",
    "RetryPolicy",
    "ScrapeJob",
    "StartedCrawl",
    "Unauthenticated",
    "Unavailable",
    "WaitTimeout",
    "WatchUpdate",
    "field_values",
    "settings_from_env",
]
