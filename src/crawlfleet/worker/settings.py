"""Worker settings: one frozen object per process, built from flags and ``CRAWLFLEET_*`` variables."""

from __future__ import annotations

import argparse
import os
import secrets
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from crawlfleet.worker.credentials import ChannelSecurity, add_security_flags, security_from
from crawlfleet.worker.pipeline.settings import ScrapeSettings, add_scrape_flags, scrape_settings_from

ENV_PREFIX = "CRAWLFLEET_"

DEFAULT_COORDINATOR = "127.0.0.1:50051"
DEFAULT_SLOTS = 8
MAX_SLOTS = 1000  # the coordinator accepts max_jobs in 1..1000
DEFAULT_KINDS = ("scrape", "noop")
DEFAULT_LEASE_WAIT = 10.0
DEFAULT_SHUTDOWN_GRACE = 30.0
DEFAULT_SHUTDOWN_REPORT_TIMEOUT = 10.0
DEFAULT_COMPLETE_BATCH_MAX = 100
DEFAULT_COMPLETE_FLUSH_INTERVAL = 0.005
DEFAULT_HEARTBEAT_FRACTION = 1 / 3
DEFAULT_ALLOW_LOOPBACK = False
DEFAULT_LOG_LEVEL = "INFO"
DEFAULT_METRICS_LISTEN = "127.0.0.1:9465"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


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
                security=security_from(ns),
            )
        except ValueError as exc:
            parser.error(str(exc))


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """The worker's flags. String defaults go through each flag's ``type``, so bad env values fail
    with the same message as bad flags."""
    parser = argparse.ArgumentParser(
        prog="crawlfleet-worker",
        description="Leases jobs from a crawlfleet coordinator and runs them.",
        epilog=f"Every flag also reads {ENV_PREFIX}<FLAG_NAME>, e.g. {ENV_PREFIX}SLOTS.",
    )

    def add(flag: str, default: str, kind: Callable[[str], object], help_text: str) -> None:
        env_name = ENV_PREFIX + flag.removeprefix("--").replace("-", "_").upper()
        parser.add_argument(flag, default=env.get(env_name, default), type=kind, help=f"{help_text} [{env_name}]")

    add("--coordinator", DEFAULT_COORDINATOR, str, "coordinator address host:port")
    add("--slots", str(DEFAULT_SLOTS), _positive_int, "jobs run at the same time")
    add("--worker-id", "", str, "worker id (default <hostname>-<pid>-<random4>)")
    add("--kinds", ",".join(DEFAULT_KINDS), _kinds, "comma-separated job kinds to lease")
    add("--lease-wait", str(DEFAULT_LEASE_WAIT), _positive_float, "long-poll wait of Lease, seconds")
    add(
        "--shutdown-grace",
        str(DEFAULT_SHUTDOWN_GRACE),
        _non_negative_float,
        "seconds running jobs get to finish at shutdown",
    )
    add(
        "--shutdown-report-timeout",
        str(DEFAULT_SHUTDOWN_REPORT_TIMEOUT),
        _non_negative_float,
        "seconds to release jobs and flush reports at shutdown",
    )
    add("--complete-batch-max", str(DEFAULT_COMPLETE_BATCH_MAX), _positive_int, "most jobs in one Complete call")
    add(
        "--complete-flush-interval",
        str(DEFAULT_COMPLETE_FLUSH_INTERVAL),
        _non_negative_float,
        "seconds a success waits for others to share its Complete call",
    )
    add(
        "--heartbeat-fraction",
        str(DEFAULT_HEARTBEAT_FRACTION),
        _positive_float,
        "heartbeat every lease_duration * this",
    )
    add_scrape_flags(add, positive_int=_positive_int, positive_float=_positive_float)
    add("--log-level", DEFAULT_LOG_LEVEL, _log_level, "DEBUG, INFO, WARNING or ERROR")
    add(
        "--metrics-listen",
        DEFAULT_METRICS_LISTEN,
        str,
        "host:port to serve Prometheus metrics on (/metrics); off disables, port 0 picks a free one",
    )
    add_security_flags(parser, add, env)
    loopback_env = ENV_PREFIX + "ALLOW_LOOPBACK"
    try:
        loopback_default = _bool(env.get(loopback_env, str(DEFAULT_ALLOW_LOOPBACK)))
    except ValueError as exc:
        parser.error(f"{loopback_env}: {exc}")
    parser.add_argument(
        "--allow-loopback",
        action=argparse.BooleanOptionalAction,
        default=loopback_default,
        help=f"let scrapes fetch loopback addresses (tests and the demo) [{loopback_env}]",
    )
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    if not kinds:
        raise argparse.ArgumentTypeError("at least one kind is needed")
    return kinds


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(LOG_LEVELS)}")
    return level


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")
