"""Coordinator settings: one frozen object per process, from flags and CRAWLFLEET_* variables."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from crawlfleet.common.flags import ENV_PREFIX, EnvFlags, non_negative_float, positive_float, positive_int
from crawlfleet.common.logs import DEFAULT_LOG_LEVEL, add_log_level_flag
from crawlfleet.common.metrics_http import add_metrics_listen_flag
from crawlfleet.coordinator.limits import ServerLimits, add_limit_flags, limits_from_args
from crawlfleet.coordinator.politeness import Politeness, add_politeness_flags, politeness_from_args
from crawlfleet.coordinator.retention import Retention, add_retention_flags, retention_from_args
from crawlfleet.coordinator.security.settings import SecuritySettings, add_security_flags, security_from_args

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_MAX_LEASE_WAIT_SECONDS = 20.0
DEFAULT_RECHECK_SECONDS = 1.0
DEFAULT_REAP_INTERVAL_SECONDS = 1.0
DEFAULT_POOL_SIZE = 10
DEFAULT_SHUTDOWN_GRACE_SECONDS = 10.0
DEFAULT_RETRY_INITIAL_SECONDS = 1.0
DEFAULT_RETRY_MULTIPLIER = 2.0
DEFAULT_RETRY_MAX_SECONDS = 300.0
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_MAX_ENQUEUE_BATCH = 10_000
DEFAULT_MAX_SPEC_BYTES = 16 * 1024
DEFAULT_METRICS_LISTEN = "127.0.0.1:9464"
DEFAULT_METRICS_REFRESH_SECONDS = 5.0
DEFAULT_MAX_WATCH_STREAMS = 100
DEFAULT_WATCH_RECHECK_SECONDS = 5.0
# Bounds on every statement of a serving coordinator (0 = none): a row lock held elsewhere or a
# stuck statement is answered UNAVAILABLE (the caller retries) instead of stalling the call.
DEFAULT_LOCK_TIMEOUT_SECONDS = 2.0
DEFAULT_STATEMENT_TIMEOUT_SECONDS = 30.0


def default_data_dir(environ: Mapping[str, str]) -> Path:
    """Where the embedded PostgreSQL keeps its data when no DATABASE_URL is given.

    As root, the embedded server runs as a system user and makes every parent of the data
    directory world-traversable; /var/lib is already so, unlike /root.
    """
    if os.geteuid() == 0:
        return Path("/var/lib/crawlfleet/pgdata")
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "crawlfleet" / "pgdata"


@dataclass(frozen=True, kw_only=True)
class RetryDefaults:
    initial_seconds: float = DEFAULT_RETRY_INITIAL_SECONDS
    multiplier: float = DEFAULT_RETRY_MULTIPLIER
    max_seconds: float = DEFAULT_RETRY_MAX_SECONDS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS


@dataclass(frozen=True, kw_only=True)
class CoordinatorSettings:
    listen: str = DEFAULT_LISTEN
    # None: start the embedded PostgreSQL in data_dir.
    database_url: str | None = None
    data_dir: Path = Path(".crawlfleet/pgdata")
    pool_size: int = DEFAULT_POOL_SIZE
    lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS
    statement_timeout_seconds: float = DEFAULT_STATEMENT_TIMEOUT_SECONDS
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    max_lease_wait_seconds: float = DEFAULT_MAX_LEASE_WAIT_SECONDS
    recheck_seconds: float = DEFAULT_RECHECK_SECONDS
    reap_interval_seconds: float = DEFAULT_REAP_INTERVAL_SECONDS
    shutdown_grace_seconds: float = DEFAULT_SHUTDOWN_GRACE_SECONDS
    retry: RetryDefaults = RetryDefaults()
    max_enqueue_batch: int = DEFAULT_MAX_ENQUEUE_BATCH
    max_spec_bytes: int = DEFAULT_MAX_SPEC_BYTES
    migrate_on_start: bool = True
    log_level: str = DEFAULT_LOG_LEVEL
    # host:port of the Prometheus endpoint; "" or "off" disables it, port 0 picks a free port.
    metrics_listen: str = DEFAULT_METRICS_LISTEN
    # How often the queue gauges (jobs by state, oldest queued age) are read from the database.
    metrics_refresh_seconds: float = DEFAULT_METRICS_REFRESH_SECONDS
    # Open WatchJobs streams per coordinator; more are refused with RESOURCE_EXHAUSTED.
    max_watch_streams: int = DEFAULT_MAX_WATCH_STREAMS
    # How often a watch stream re-checks without a notify (covers notifies that never came).
    watch_recheck_seconds: float = DEFAULT_WATCH_RECHECK_SECONDS
    security: SecuritySettings = field(default_factory=SecuritySettings)
    # HTTP/2 streams, idle connections, keepalive, message size, request bytes in flight.
    limits: ServerLimits = field(default_factory=ServerLimits)
    # Fleet defaults of per-host limits, robots.txt and host backoff.
    politeness: Politeness = field(default_factory=Politeness)
    # How long finished jobs are kept (for ever by default).
    retention: Retention = field(default_factory=Retention)

    @classmethod
    def from_args(
        cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> tuple[str, CoordinatorSettings]:
        """Parse `[serve|migrate|recount|hash-token] [flags]`; flags default to CRAWLFLEET_<FLAG> variables.

        ``environ`` defaults to ``os.environ``; this is the only place the coordinator reads it.
        """
        env = os.environ if environ is None else environ
        parser = build_parser(env)
        args = parser.parse_args(argv)
        settings = cls(
            listen=args.listen,
            database_url=args.database_url or None,
            data_dir=args.data_dir,
            pool_size=args.pool_size,
            lock_timeout_seconds=args.lock_timeout_seconds,
            statement_timeout_seconds=args.statement_timeout_seconds,
            lease_seconds=args.lease_seconds,
            max_lease_wait_seconds=args.max_lease_wait_seconds,
            recheck_seconds=args.recheck_seconds,
            reap_interval_seconds=args.reap_interval_seconds,
            shutdown_grace_seconds=args.shutdown_grace_seconds,
            retry=RetryDefaults(
                initial_seconds=args.retry_initial_seconds,
                multiplier=args.retry_multiplier,
                max_seconds=args.retry_max_seconds,
                max_attempts=args.max_attempts,
            ),
            migrate_on_start=not args.no_migrate,
            log_level=args.log_level,
            metrics_listen=args.metrics_listen,
            metrics_refresh_seconds=args.metrics_refresh_seconds,
            max_watch_streams=args.max_watch_streams,
            security=security_from_args(args),
            limits=limits_from_args(args),
            politeness=politeness_from_args(args),
            retention=retention_from_args(args),
        )
        return args.command, settings


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """The coordinator's command and flags; each flag reads its ``CRAWLFLEET_*`` variable."""
    parser = argparse.ArgumentParser(
        prog="crawlfleet-coordinator",
        description="Serves the crawlfleet job queue over gRPC.",
        epilog=f"Every flag also reads {ENV_PREFIX}<FLAG_NAME>, e.g. {ENV_PREFIX}LISTEN (except --token).",
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=["serve", "migrate", "recount", "hash-token"],
        default="serve",
        help="serve (default); only apply migrations; rebuild the job counts; print a token's hash for --tokens-file",
    )
    flags = EnvFlags(parser, env)
    flags.add("--listen", DEFAULT_LISTEN, "host:port to serve gRPC on (port 0 picks a free one)", metavar="HOST:PORT")
    flags.add(
        "--database-url",
        None,
        "PostgreSQL DSN; unset starts the embedded server",
        metavar="DSN",
        secret=True,  # it may hold a password
        aliases=("DATABASE_URL",),
    )
    flags.add("--data-dir", default_data_dir(env), "data directory of the embedded PostgreSQL", type=Path)
    flags.add("--pool-size", DEFAULT_POOL_SIZE, "database connections of this coordinator", type=positive_int)
    flags.add(
        "--lock-timeout-seconds",
        DEFAULT_LOCK_TIMEOUT_SECONDS,
        "longest a statement waits for a lock (e.g. a row another session holds) before the call is "
        "answered UNAVAILABLE; 0 waits forever",
        type=non_negative_float,
    )
    flags.add(
        "--statement-timeout-seconds",
        DEFAULT_STATEMENT_TIMEOUT_SECONDS,
        "longest a statement may run before the call is answered UNAVAILABLE; 0 for no limit",
        type=non_negative_float,
    )
    flags.add(
        "--lease-seconds", DEFAULT_LEASE_SECONDS, "how long a lease lasts without a heartbeat", type=positive_float
    )
    flags.add(
        "--max-lease-wait-seconds",
        DEFAULT_MAX_LEASE_WAIT_SECONDS,
        "longest a Lease call long-polls, whatever the worker asks",
        type=non_negative_float,
    )
    flags.add(
        "--recheck-seconds",
        DEFAULT_RECHECK_SECONDS,
        "waiting Lease calls look for jobs this often even without a notification",
        type=positive_float,
    )
    flags.add(
        "--reap-interval-seconds",
        DEFAULT_REAP_INTERVAL_SECONDS,
        "how often expired leases are ended",
        type=positive_float,
    )
    flags.add(
        "--shutdown-grace-seconds",
        DEFAULT_SHUTDOWN_GRACE_SECONDS,
        "time in-flight calls get to finish at shutdown",
        type=non_negative_float,
    )
    flags.add(
        "--retry-initial-seconds",
        DEFAULT_RETRY_INITIAL_SECONDS,
        "default delay before the first retry",
        type=non_negative_float,
    )
    flags.add("--retry-multiplier", DEFAULT_RETRY_MULTIPLIER, "default growth of the retry delay", type=positive_float)
    flags.add("--retry-max-seconds", DEFAULT_RETRY_MAX_SECONDS, "default longest retry delay", type=non_negative_float)
    flags.add("--max-attempts", DEFAULT_MAX_ATTEMPTS, "default attempts before a job is dead", type=positive_int)
    flags.add_switch("--no-migrate", False, "do not apply migrations at start", negatable=False)
    add_log_level_flag(flags)
    add_metrics_listen_flag(flags, DEFAULT_METRICS_LISTEN)
    flags.add(
        "--metrics-refresh-seconds",
        DEFAULT_METRICS_REFRESH_SECONDS,
        "how often the queue-depth gauges are read from the database",
        type=positive_float,
    )
    flags.add(
        "--max-watch-streams",
        DEFAULT_MAX_WATCH_STREAMS,
        "open WatchJobs streams this coordinator serves; more are refused (RESOURCE_EXHAUSTED)",
        type=positive_int,
    )
    add_politeness_flags(
        flags.group("politeness", "per-host limits, robots.txt and host backoff; see docs/politeness.md")
    )
    add_retention_flags(flags.group("retention", "deleting finished jobs in the background; see docs/operations.md"))
    add_limit_flags(flags.group("limits", "connection, message and memory bounds; see docs/operations.md"))
    add_security_flags(flags.group("security", "bearer tokens and TLS; see docs/security.md"))
    return parser
