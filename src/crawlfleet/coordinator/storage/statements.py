"""Every named query the coordinator runs, with the rows it takes and returns and its parameters.

A batch's rows become the leading array parameters (one per field, for `unnest`); `params` name
the parameters after them, in the order of the SQL's `$n`. `now` parameters are nullable (the
database clock) so tests control time.
"""

from __future__ import annotations

from typing import Any

from crawlfleet.coordinator.storage.admin_rows import (
    ActivityMinute,
    Attempt,
    CancelOutcome,
    DeletedImage,
    JobDetail,
    JobResultRow,
    JobSummary,
    KindStateCount,
    OldestDue,
    PurgedJobs,
    PurgeLock,
    QueueHealth,
    RequeuedJob,
    StoredThumbnail,
    WorkerRow,
)
from crawlfleet.coordinator.storage.crawl_rows import (
    CrawlErrorCount,
    CrawlJobCount,
    CrawlJobsCancelled,
    CrawlPurged,
    CrawlRow,
    CrawlSpecRow,
    CrawlStopped,
    DiscoverOutcome,
    FinishedCrawl,
    NewCrawl,
    PageDepth,
    PreviousResult,
    PreviousValidators,
    RecentPages,
    SitemapJobsMade,
)
from crawlfleet.coordinator.storage.host_rows import (
    HostCount,
    HostGauges,
    HostPolicyRow,
    HostRow,
    PausedByReason,
    PausedHost,
    PolicyApplied,
    ResumedHost,
)
from crawlfleet.coordinator.storage.result_rows import (
    FoundThumbnail,
    ImageRow,
    LockedImage,
    PageImageRow,
    PageRow,
    StoredImage,
    StoredPage,
    ThumbnailRow,
)
from crawlfleet.coordinator.storage.rows import (
    AppliedMigration,
    CompletedJob,
    Completion,
    EnqueueOutcome,
    FailOutcome,
    HostRobots,
    JobFencing,
    LatencySample,
    LeasedJob,
    LeaseExtension,
    LeaseRef,
    LiveJob,
    NewJob,
    NextReady,
    ReapedJob,
    RobotsReported,
    UnfinishedIds,
    WatchedJob,
)
from crawlfleet.coordinator.storage.statement import NoRows, Statement, batch_statement, statement

# The worker and producer side (queue.py).
JOB_ENQUEUE_MANY = batch_statement("job_enqueue_many", takes=NewJob, returns=EnqueueOutcome, params=("now", "owner"))
JOB_GET_LIVE_BY_DEDUPE_KEYS = statement("job_get_live_by_dedupe_keys", returns=LiveJob, params=("dedupe_keys",))
JOB_LEASE_AVAILABLE = statement(
    "job_lease_available",
    returns=LeasedJob,
    params=(
        "worker_id",
        "max_jobs",
        "kinds",
        "lease_ms",
        "now",
        "principal",
        "host_concurrency",
        "host_delay_ms",
        "obey_robots",
        "saturated_recheck_ms",
    ),
)
HOST_NEXT_READY = statement("host_next_ready", returns=NextReady)
HOST_ADAPT_DELAY = batch_statement(
    "host_adapt_delay", takes=LatencySample, returns=NoRows, params=("target_concurrency", "max_delay_ms")
)
WORKER_SEEN = statement("worker_seen", returns=NoRows, params=("worker_id", "host", "version", "kinds", "slots", "now"))
JOB_HEARTBEAT_MANY = batch_statement(
    "job_heartbeat_many", takes=LeaseRef, returns=LeaseExtension, params=("lease_ms", "now", "principal")
)
JOB_COMPLETE_IF_LEASED_MANY = batch_statement(
    "job_complete_if_leased_many", takes=Completion, returns=CompletedJob, params=("now", "principal")
)
JOB_GET_FENCING_MANY = statement("job_get_fencing_many", returns=JobFencing, params=("job_ids",))
PAGE_INSERT_MANY = batch_statement("page_insert_many", takes=PageRow, returns=StoredPage, params=("now",))
IMAGE_INSERT_MANY = batch_statement("image_insert_many", takes=ImageRow, returns=NoRows, params=("now",))
THUMBNAIL_INSERT_MANY = batch_statement("thumbnail_insert_many", takes=ThumbnailRow, returns=NoRows)
PAGE_IMAGE_INSERT_MANY = batch_statement("page_image_insert_many", takes=PageImageRow, returns=NoRows)
IMAGE_LOCK_STORED = statement("image_lock_stored", returns=LockedImage, params=("sha256s",))
THUMBNAIL_FIND_MANY = statement("thumbnail_find_many", returns=FoundThumbnail, params=("image_sha256s",))
IMAGE_FIND_STORED = statement("image_find_stored", returns=StoredImage, params=("sha256s",))
JOB_FAIL_IF_LEASED = statement(
    "job_fail_if_leased",
    returns=FailOutcome,
    params=(
        "job_id",
        "lease_token",
        "error_type",
        "error_message",
        "retryable",
        "retry_delay_ms",
        "release",
        "now",
        "principal",
        "host_failure",
        "host_pause_ms",
        "breaker_failures",
        "backoff_initial_ms",
        "backoff_max_ms",
        "skip",
    ),
)
HOST_ROBOTS_REPORT = statement(
    "host_robots_report",
    returns=RobotsReported,
    params=(
        "job_id",
        "lease_token",
        "principal",
        "host",
        "state",
        "status_code",
        "body",
        "delay_ms",
        "ttl_ms",
        "backoff_initial_ms",
        "backoff_max_ms",
        "pause_reason",
        "now",
    ),
)
HOST_ROBOTS_GET = statement("host_robots_get", returns=HostRobots, params=("host",))
JOB_REAP_EXPIRED = statement("job_reap_expired", returns=ReapedJob, params=("batch", "now"))
DATABASE_PING = statement("database_ping", returns=NoRows)
JOB_TABLE_ANALYZE = statement("job_table_analyze", returns=NoRows)

# Crawls (crawls.py), discovery included (it runs in the Complete transaction).
CRAWL_INSERT = statement(
    "crawl_insert",
    returns=NewCrawl,
    params=(
        "owner",
        "spec",
        "max_depth",
        "max_pages",
        "max_pages_per_host",
        "max_query_variants",
        "priority",
        "max_attempts",
        "retry_initial_ms",
        "retry_multiplier",
        "retry_max_ms",
        "now",
    ),
)
CRAWL_DISCOVER = statement(
    "crawl_discover",
    returns=DiscoverOutcome,
    params=(
        "crawl_id",
        "urls",
        "hosts",
        "path_keys",
        "depths",
        "specs",
        "out_of_scope",
        "too_deep",
        "now",
    ),
)
CRAWL_HOST_POLICIES_INSERT = statement(
    "crawl_host_policies_insert",
    returns=NoRows,
    params=("crawl_id", "patterns", "max_concurrency", "delay_ms", "obey_robots"),
)
CRAWL_PAGE_DEPTH = statement("crawl_page_depth", returns=PageDepth, params=("crawl_id", "job_id"))
CRAWL_URLS_DEPTH_LOWER = statement("crawl_urls_depth_lower", returns=NoRows, params=("crawl_id", "urls", "depth"))
CRAWL_URL_SEEN_BY_REDIRECT = statement(
    "crawl_url_seen_by_redirect",
    returns=NoRows,
    params=("crawl_id", "url", "depth", "host", "path_key", "job_id", "now"),
)
CRAWL_INSERT_REFRESH = statement("crawl_insert_refresh", returns=NewCrawl, params=("crawl_id", "starts_at", "now"))
CRAWL_PREVIOUS_VALIDATORS = statement(
    "crawl_previous_validators", returns=PreviousValidators, params=("crawl_id", "urls")
)
CRAWL_PREVIOUS_RESULT = statement("crawl_previous_result", returns=PreviousResult, params=("crawl_id", "url"))
CRAWL_SPEC_GET = statement("crawl_spec_get", returns=CrawlSpecRow, params=("crawl_id",))
CRAWL_GET = statement("crawl_get", returns=CrawlRow, params=("crawl_id", "owner"))
CRAWL_JOB_COUNTS = statement("crawl_job_counts", returns=CrawlJobCount, params=("crawl_ids",))
CRAWL_JOB_COUNT_FOLD = statement("crawl_job_count_fold", returns=NoRows)
CRAWL_JOB_COUNT_LOCK = statement("crawl_job_count_lock", returns=NoRows)
CRAWL_JOB_COUNT_CLEAR = statement("crawl_job_count_clear", returns=NoRows)
CRAWL_JOB_COUNT_REBUILD = statement("crawl_job_count_rebuild", returns=NoRows)
CRAWL_ERROR_COUNTS = statement("crawl_error_counts", returns=CrawlErrorCount, params=("crawl_id",))
CRAWL_RECENT_PAGES = statement("crawl_recent_pages", returns=RecentPages, params=("crawl_id", "now"))
CRAWL_LIST = statement("crawl_list", returns=CrawlRow, params=("before_id", "limit", "owner"))
CRAWL_CANCEL = statement("crawl_cancel", returns=CrawlStopped, params=("crawl_id", "owner", "now"))
CRAWL_CANCEL_JOBS = statement("crawl_cancel_jobs", returns=CrawlJobsCancelled, params=("crawl_id", "now"))
CRAWL_PURGE_ENDED = statement("crawl_purge_ended", returns=CrawlPurged, params=("ended_before", "limit"))
CRAWL_FINISH_IDLE = statement("crawl_finish_idle", returns=FinishedCrawl, params=("now",))
CRAWL_SITEMAP_JOBS_INSERT = statement(
    "crawl_sitemap_jobs_insert", returns=SitemapJobsMade, params=("crawl_id", "urls", "hosts", "specs", "now")
)

# WatchJobs streams (watch.py).
JOB_WATCH_FINISHED_MANY = statement(
    "job_watch_finished_many", returns=WatchedJob, params=("job_ids", "find_missing", "owner")
)
JOB_LIST_UNFINISHED_IDS = statement("job_list_unfinished_ids", returns=UnfinishedIds, params=("limit", "owner"))
JOB_WATCHER_REGISTER = statement("job_watcher_register", returns=NoRows, params=("coordinator_id", "ttl_ms"))
JOB_WATCHER_UNREGISTER = statement("job_watcher_unregister", returns=NoRows, params=("coordinator_id",))

# The operator side (admin.py).
JOB_GET = statement("job_get", returns=JobDetail, params=("job_id", "owner"))
JOB_ATTEMPT_LIST = statement("job_attempt_list", returns=Attempt, params=("job_id",))
JOB_CANCEL = statement("job_cancel", returns=CancelOutcome, params=("job_id", "now"))
THUMBNAIL_GET = statement("thumbnail_get", returns=StoredThumbnail, params=("sha256", "owner"))
RESULT_LIST_AFTER = statement(
    "result_list_after",
    returns=JobResultRow,
    params=("after_id", "limit", "kind", "max_bytes", "owner", "url_like"),
)
RESULT_LIST_CHANGED_AFTER = statement(
    "result_list_changed_after",
    returns=JobResultRow,
    params=("after_id", "limit", "kind", "max_bytes", "owner", "changed_since", "url_like"),
)
RESULT_LIST_CRAWL_AFTER = statement(
    "result_list_crawl_after",
    returns=JobResultRow,
    params=("after_id", "limit", "kind", "max_bytes", "owner", "crawl_id"),
)
JOB_COUNT_FOLD = statement("job_count_fold", returns=NoRows)
JOB_COUNT_LOCK = statement("job_count_lock", returns=NoRows)
JOB_COUNT_CLEAR = statement("job_count_clear", returns=NoRows)
JOB_COUNT_REBUILD = statement("job_count_rebuild", returns=NoRows)
JOB_COUNT_BY_KIND_STATE = statement("job_count_by_kind_state", returns=KindStateCount)
QUEUE_HEALTH = statement(
    "queue_health", returns=QueueHealth, params=("expiring_ms", "stuck_ms", "now", "not_due_bound")
)
QUEUE_OLDEST_DUE = statement("queue_oldest_due", returns=OldestDue, params=("now",))
WORKER_LIST_SEEN = statement("worker_list_seen", returns=WorkerRow, params=("since",))
QUEUE_ACTIVITY_BY_MINUTE = statement("queue_activity_by_minute", returns=ActivityMinute, params=("since", "until"))
PLAN_EACH_CALL = statement("plan_each_call", returns=NoRows)
# *_like: a LIKE pattern that matches a prefix literally.
JOB_LIST_BY_STATE = statement(
    "job_list_by_state",
    returns=JobSummary,
    params=("states", "kind", "url_like", "created_after", "created_before", "error_like", "before_id", "limit"),
)
JOB_LIST_FILTERED = statement(
    "job_list_filtered",
    returns=JobSummary,
    params=("kind", "url_like", "created_after", "created_before", "error_like", "before_id", "limit"),
)
JOB_REQUEUE_DEAD = statement(
    "job_requeue_dead",
    returns=RequeuedJob,
    params=("job_ids", "kind", "url_like", "created_after", "created_before", "error_like", "now", "limit"),
)
JOB_PURGE_LOCK = statement("job_purge_lock", returns=NoRows)
JOB_PURGE_TRY_LOCK = statement("job_purge_try_lock", returns=PurgeLock)
JOB_PURGE_FINISHED = statement("job_purge_finished", returns=PurgedJobs, params=("states", "finished_before", "limit"))
IMAGE_LOCK_FOR_REMOVAL = statement("image_lock_for_removal", returns=LockedImage, params=("sha256s",))
IMAGE_DELETE_UNREFERENCED = statement("image_delete_unreferenced", returns=DeletedImage, params=("sha256s",))

# Hosts and host policies (hosts.py).
HOST_GET = statement("host_get", returns=HostRow, params=("host", "queued_cap", "now"))
HOST_LIST = statement(
    "host_list",
    returns=HostRow,
    params=("after_host", "host_prefix", "paused_only", "queued_only", "limit", "queued_cap", "now"),
)
HOST_PAUSE = statement("host_pause", returns=PausedHost, params=("host", "pause_ms", "reason", "now"))
HOST_RESUME = statement("host_resume", returns=ResumedHost, params=("host", "now"))
HOST_POLICY_LOCK = statement("host_policy_lock", returns=NoRows)
HOST_POLICY_UPSERT = statement(
    "host_policy_upsert",
    returns=HostPolicyRow,
    params=("pattern", "max_concurrency", "delay_ms", "obey_robots", "note", "now"),
)
HOST_POLICY_DELETE = statement("host_policy_delete", returns=HostPolicyRow, params=("pattern",))
HOST_POLICY_APPLY = statement("host_policy_apply", returns=PolicyApplied, params=("pattern",))
HOST_POLICY_GOVERNED = statement("host_policy_governed", returns=HostCount, params=("pattern",))
HOST_POLICY_LIST = statement("host_policy_list", returns=HostPolicyRow, params=("after_pattern", "limit"))
HOST_GAUGES = statement("host_gauges", returns=HostGauges)
HOST_PAUSED_BY_REASON = statement("host_paused_by_reason", returns=PausedByReason, params=("now",))

# The migration runner (migrate.py).
MIGRATION_TIMEOUTS_LIFT = statement("migration_timeouts_lift", returns=NoRows)
MIGRATION_LOCK = statement("migration_lock", returns=NoRows)
MIGRATION_TABLE_CREATE = statement("migration_table_create", returns=NoRows)
MIGRATION_APPLIED_LIST = statement("migration_applied_list", returns=AppliedMigration)
MIGRATION_RECORD = statement("migration_record", returns=NoRows, params=("version", "name", "checksum"))

# Every statement above, for the test that checks them against the SQL.
ALL: tuple[Statement[Any, Any], ...] = tuple(value for value in globals().values() if isinstance(value, Statement))
