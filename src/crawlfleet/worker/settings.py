"""Worker settings: one frozen object per process, built from flags and ``CRAWLFLEET_*`` variables."""

from __future__ import annotations

import argparse
import os
import secrets
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from crawlfleet.common.channel import ChannelSecurity, add_security_flags, security_from
from crawlfleet.common.flags import (
    ENV_PREFIX,
    EnvFlags,
    comma_list,
    non_negative_float,
    positive_float,
    positive_int,
)
from crawlfleet.common.logs import DEFAULT_LOG_LEVEL, LOG_LEVELS, add_log_level_flag
from crawlfleet.common.metrics_http import add_metrics_listen_flag
from crawlfleet.worker.pipeline.settings import ScrapeSettings, add_scrape_flags, scrape_settings_from
from crawlfleet.worker.pipeline.sitemap_settings import SitemapSettings, add_sitemap_flags, sitemap_settings_from

DEFAULT_COORDINATOR = "127.0.0.1:50051"
DEFAULT_SLOTS = 8
MAX_SLOTS = 1000  # the coordinator accepts max_jobs in 1..1000
DEFAULT_KINDS = ("scrape", "sitemap", "noop")
DEFAULT_LEASE_WAIT = 10.0
DEFAULT_SHUTDOWN_GRACE = 30.0
DEFAULT_SHUTDOWN_REPORT_TIMEOUT = 10.0
DEFAULT_COMPLETE_BATCH_MAX = 100
DEFAULT_COMPLETE_FLUSH_INTERVAL = 0.005
DEFAULT_HEARTBEAT_FRACTION = 1 / 3
DEFAULT_ALLOW_LOOPBACK = False
DEFAULT_METRICS_LISTEN = "127.0.0.1:9465"


def default_worker_id() -> str:
    """``<hostname>-<pid>-<random4>``: unique per process, readable in operator listings."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


@dataclass(frozen=True, kw_only=True)
class WorkerSettings:
    """Everything a worker process is configured with. Durations are in seconds."""

    coordinator: str = DEFAULT_COORDINATOR
    slots: int = DEFAULT_SLOTS
    worker_id: str
    kinds: tuple[str, ...] = DEFAULT_KINDS
    lease_wait: float = DEFAULT_LEASE_WAIT
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    # Bound on releasing jobs and flushing reports at shutdown, after the grace period.
    shutdown_report_timeout: float = DEFAULT_SHUTDOWN_REPORT_TIMEOUT
    complete_batch_max: int = DEFAULT_COMPLETE_BATCH_MAX
    complete_flush_interval: float = DEFAULT_COMPLETE_FLUSH_INTERVAL
    heartbeat_fraction: float = DEFAULT_HEARTBEAT_FRACTION
    log_level: str = DEFAULT_LOG_LEVEL
    # host:port of the Prometheus endpoint of the worker process; "" or "off" disables it, port 0 picks
    # a free port. Served by worker.main, not by Worker (tests build Workers without an endpoint).
    metrics_listen: str = DEFAULT_METRICS_LISTEN
    scrape: ScrapeSettings = field(default_factory=ScrapeSettings)
    sitemap: SitemapSettings = field(default_factory=SitemapSettings)
    security: ChannelSecurity = field(default_factory=ChannelSecurity)

    def __post_init__(self) -> None:
        if not 1 <= self.slots <= MAX_SLOTS:
            raise ValueError(f"slots must be in 1..{MAX_SLOTS}, got {self.slots}")
        if not self.worker_id:
            raise ValueError("worker_id must not be empty")
        if not self.kinds:
            raise ValueError("kinds must not be empty")
        if not 0 < self.heartbeat_fraction < 1:
            raise ValueError(f"heartbeat_fraction must be in (0, 1), got {self.heartbeat_fraction}")
        if self.complete_batch_max < 1:
            raise ValueError(f"complete_batch_max must be at least 1, got {self.complete_batch_max}")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {LOG_LEVELS}, got {self.log_level!r}")

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> WorkerSettings:
        """Parses flags; each flag defaults to its ``CRAWLFLEET_*`` variable, then to the constant.

        ``env`` defaults to ``os.environ``; this is the only place the worker reads the environment.
        """
        parser = build_parser(os.environ if env is None else env)
        ns = parser.parse_args(argv)
        try:
            return cls(
                coordinator=ns.coordinator,
                slots=ns.slots,
                worker_id=ns.worker_id or default_worker_id(),
                kinds=ns.kinds,
                lease_wait=ns.lease_wait,
                shutdown_grace=ns.shutdown_grace,
                shutdown_report_timeout=ns.shutdown_report_timeout,
                complete_batch_max=ns.complete_batch_max,
                complete_flush_interval=ns.complete_flush_interval,
                heartbeat_fraction=ns.heartbeat_fraction,
                log_level=ns.log_level,
                metrics_listen=ns.metrics_listen,
                scrape=scrape_settings_from(ns, allow_loopback=ns.allow_loopback),
                sitemap=sitemap_settings_from(ns),
                security=security_from(ns),
            )
        except ValueError as exc:
            parser.error(str(exc))


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """The worker's flags; each reads its ``CRAWLFLEET_*`` variable (see ``common.flags``)."""
    parser = argparse.ArgumentParser(
        prog="crawlfleet-worker",
        description="Leases jobs from a crawlfleet coordinator and runs them.",
        epilog=f"Every flag also reads {ENV_PREFIX}<FLAG_NAME>, e.g. {ENV_PREFIX}SLOTS.",
    )
    flags = EnvFlags(parser, env)

    # The shape of ``add`` that ``add_scrape_flags`` declares the pipeline's flags with.
    def add(flag: str, default: object, kind: Callable[[str], object], help_text: str) -> None:
        flags.add(flag, default, help_text, type=kind)

    add("--coordinator", DEFAULT_COORDINATOR, str, "coordinator address host:port, or a gRPC target (ipv4:a:p,b:p)")
    add("--slots", DEFAULT_SLOTS, positive_int, "jobs run at the same time")
    add("--worker-id", "", str, "worker id (default <hostname>-<pid>-<random4>)")
    add("--kinds", DEFAULT_KINDS, _kinds, "comma-separated job kinds to lease")
    add("--lease-wait", DEFAULT_LEASE_WAIT, positive_float, "long-poll wait of Lease, seconds")
    add(
        "--shutdown-grace",
        DEFAULT_SHUTDOWN_GRACE,
        non_negative_float,
        "seconds running jobs get to finish at shutdown",
    )
    add(
        "--shutdown-report-timeout",
        DEFAULT_SHUTDOWN_REPORT_TIMEOUT,
        non_negative_float,
        "seconds to release jobs and flush reports at shutdown",
    )
    add("--complete-batch-max", DEFAULT_COMPLETE_BATCH_MAX, positive_int, "most jobs in one Complete call")
    add(
        "--complete-flush-interval",
        DEFAULT_COMPLETE_FLUSH_INTERVAL,
        non_negative_float,
        "seconds a success waits for others to share its Complete call",
    )
    add(
        "--heartbeat-fraction",
        DEFAULT_HEARTBEAT_FRACTION,
        positive_float,
        "heartbeat every lease_duration * this",
    )
    add_scrape_flags(add)
    add_sitemap_flags(add)
    add_log_level_flag(flags)
    add_metrics_listen_flag(flags, DEFAULT_METRICS_LISTEN)
    add_security_flags(flags)
    flags.add_switch(
        "--allow-loopback", DEFAULT_ALLOW_LOOPBACK, "let scrapes fetch loopback addresses (tests and the demo)"
    )
    return parser


def _kinds(text: str) -> tuple[str, ...]:
    kinds = comma_list(text)
    if not kinds:
        raise argparse.ArgumentTypeError("at least one kind is needed")
    return kinds
