"""Coordinator settings: one frozen object per process, from flags and CRAWLFLEET_* variables."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024
DEFAULT_METRICS_LISTEN = "127.0.0.1:9464"
DEFAULT_METRICS_REFRESH_SECONDS = 5.0
DEFAULT_MAX_WATCH_STREAMS = 100
DEFAULT_WATCH_RECHECK_SECONDS = 5.0
ENV_PREFIX = "CRAWLFLEET_"


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
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    max_lease_wait_seconds: float = DEFAULT_MAX_LEASE_WAIT_SECONDS
    recheck_seconds: float = DEFAULT_RECHECK_SECONDS
    reap_interval_seconds: float = DEFAULT_REAP_INTERVAL_SECONDS
    shutdown_grace_seconds: float = DEFAULT_SHUTDOWN_GRACE_SECONDS
    retry: RetryDefaults = RetryDefaults()
    max_enqueue_batch: int = DEFAULT_MAX_ENQUEUE_BATCH
    max_spec_bytes: int = DEFAULT_MAX_SPEC_BYTES
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    migrate_on_start: bool = True
    log_level: str = "INFO"
    # host:port of the Prometheus endpoint; "" or "off" disables it, port 0 picks a free port.
    metrics_listen: str = DEFAULT_METRICS_LISTEN
    # How often the queue gauges (jobs by state, oldest queued age) are read from the database.
    metrics_refresh_seconds: float = DEFAULT_METRICS_REFRESH_SECONDS
    # Open WatchJobs streams per coordinator; more are refused with RESOURCE_EXHAUSTED.
    max_watch_streams: int = DEFAULT_MAX_WATCH_STREAMS
    # How often a watch stream re-checks without a notify (covers notifies that never came).
    watch_recheck_seconds: float = DEFAULT_WATCH_RECHECK_SECONDS
    security: SecuritySettings = field(default_factory=SecuritySettings)

    @classmethod
    def from_args(
        cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> tuple[str, CoordinatorSettings]:
        """Parse `[serve|migrate|hash-token] [flags]`; flags default to CRAWLFLEET_<FLAG> variables."""
        env = os.environ if environ is None else environ

        def env_default(name: str, fallback: object) -> object:
            return env.get(ENV_PREFIX + name.upper().replace("-", "_"), fallback)

        parser = argparse.ArgumentParser(prog="crawlfleet-coordinator", description=__doc__)
        parser.add_argument(
            "command", nargs="?", choices=["serve", "migrate", "recount", "hash-token"], default="serve"
        )
        parser.add_argument(
            "--listen",
            default=env_default("listen", DEFAULT_LISTEN),
            help="host:port to serve gRPC on (port 0 picks a free one)",
        )
        parser.add_argument(
            "--database-url",
            default=env.get("DATABASE_URL") or env_default("database_url", None),
            help="PostgreSQL DSN; unset starts the embedded server",
        )
        parser.add_argument(
            "--data-dir",
            type=Path,
            default=Path(str(env_default("data_dir", default_data_dir(env)))),
            help="data directory of the embedded PostgreSQL",
        )
        parser.add_argument("--pool-size", type=int, default=env_default("pool_size", DEFAULT_POOL_SIZE))
        parser.add_argument("--lease-seconds", type=float, default=env_default("lease_seconds", DEFAULT_LEASE_SECONDS))
        parser.add_argument(
            "--max-lease-wait-seconds",
            type=float,
            default=env_default("max_lease_wait_seconds", DEFAULT_MAX_LEASE_WAIT_SECONDS),
        )
        parser.add_argument(
            "--recheck-seconds", type=float, default=env_default("recheck_seconds", DEFAULT_RECHECK_SECONDS)
        )
        parser.add_argument(
            "--reap-interval-seconds",
            type=float,
            default=env_default("reap_interval_seconds", DEFAULT_REAP_INTERVAL_SECONDS),
        )
        parser.add_argument(
            "--shutdown-grace-seconds",
            type=float,
            default=env_default("shutdown_grace_seconds", DEFAULT_SHUTDOWN_GRACE_SECONDS),
        )
        parser.add_argument(
            "--retry-initial-seconds",
            type=float,
            default=env_default("retry_initial_seconds", DEFAULT_RETRY_INITIAL_SECONDS),
        )
        parser.add_argument(
            "--retry-multiplier", type=float, default=env_default("retry_multiplier", DEFAULT_RETRY_MULTIPLIER)
        )
        parser.add_argument(
            "--retry-max-seconds", type=float, default=env_default("retry_max_seconds", DEFAULT_RETRY_MAX_SECONDS)
        )
        parser.add_argument("--max-attempts", type=int, default=env_default("max_attempts", DEFAULT_MAX_ATTEMPTS))
        parser.add_argument(
            "--no-migrate",
            action="store_true",
            default=str(env_default("no_migrate", "")).lower() in {"1", "true", "yes"},
            help="do not apply migrations at start",
        )
        parser.add_argument("--log-level", default=env_default("log_level", "INFO"))
        parser.add_argument(
            "--metrics-listen",
            default=env_default("metrics_listen", DEFAULT_METRICS_LISTEN),
            help="host:port to serve Prometheus metrics on (/metrics); off disables, port 0 picks a free one",
        )
        parser.add_argument(
            "--metrics-refresh-seconds",
            type=float,
            default=env_default("metrics_refresh_seconds", DEFAULT_METRICS_REFRESH_SECONDS),
            help="how often the queue-depth gauges are read from the database",
        )
        parser.add_argument(
            "--max-watch-streams",
            type=int,
            default=env_default("max_watch_streams", DEFAULT_MAX_WATCH_STREAMS),
            help="open WatchJobs streams this coordinator serves; more are refused (RESOURCE_EXHAUSTED)",
        )
        add_security_flags(parser, env_default)
        args = parser.parse_args(argv)
        settings = cls(
            listen=args.listen,
            database_url=args.database_url or None,
            data_dir=args.data_dir,
            pool_size=args.pool_size,
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
            log_level=str(args.log_level).upper(),
            metrics_listen=str(args.metrics_listen),
            metrics_refresh_seconds=args.metrics_refresh_seconds,
            max_watch_streams=args.max_watch_streams,
            security=security_from_args(args),
        )
        return args.command, settings
