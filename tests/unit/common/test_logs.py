"""One log line per record with its ``extra=`` context, for every program."""

from __future__ import annotations

import argparse
import io
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawlfleet.common.flags import EnvFlags
from crawlfleet.common.logs import (
    CLI_FORMAT,
    KeyValueFormatter,
    add_log_level_flag,
    format_value,
    job_log,
    setup_logging,
)
from crawlfleet.v1 import job_queue_pb2 as pb


def record(msg: str, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("crawlfleet.test")
    return logger.makeRecord(logger.name, logging.INFO, __file__, 1, msg, (), None, extra=extra)


def test_extra_fields_are_printed_known_ones_first() -> None:
    formatter = KeyValueFormatter("%(levelname)s %(message)s")
    line = formatter.format(record("reaped 2", job_ids=[4, 5], zone="eu", job_id=7, worker_id="w1"))
    assert line == "INFO reaped 2 worker_id=w1 job_id=7 job_ids=4,5 zone=eu"


def test_a_record_without_context_is_the_plain_line() -> None:
    assert KeyValueFormatter("%(message)s").format(record("stopped")) == "stopped"


def test_traceback_follows_the_context() -> None:
    rec = record("failed", job_id=3)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec.exc_info = sys.exc_info()
    first, *rest = KeyValueFormatter("%(message)s").format(rec).splitlines()
    assert first == "failed job_id=3"
    assert rest[-1] == "RuntimeError: boom"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("plain", "plain"),
        (Path("/var/lib/crawl fleet"), '"/var/lib/crawl fleet"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("", '""'),
        ((1, 2), "1,2"),
        (frozenset({3, 1}), "1,3"),
    ],
)
def test_values_stay_one_token(value: object, shown: str) -> None:
    assert format_value(value) == shown


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root")
def test_setup_logging_prints_extra_fields_and_stamps_context() -> None:
    out = io.StringIO()
    setup_logging("INFO", stream=out, context={"worker_id": "w-9"})
    logging.getLogger("crawlfleet.coordinator.background").info("reaped %d", 2, extra={"job_ids": [1, 2]})
    logging.getLogger("crawlfleet.test").debug("not at INFO")
    line = out.getvalue().strip()
    assert line.endswith("INFO crawlfleet.coordinator.background: reaped 2 worker_id=w-9 job_ids=1,2")
    assert "not at INFO" not in out.getvalue()


@pytest.mark.usefixtures("restore_root")
def test_setup_logging_again_replaces_only_its_own_handler() -> None:
    foreign = logging.NullHandler()
    logging.getLogger().addHandler(foreign)
    first, second = io.StringIO(), io.StringIO()
    setup_logging("WARNING", stream=first)
    setup_logging("WARNING", stream=second, line_format=CLI_FORMAT)
    logging.getLogger("crawlfleet.test").warning("token in clear", extra={"target": "10.0.0.1:50051"})
    assert first.getvalue() == ""
    assert second.getvalue() == "crawlfleet: WARNING: token in clear target=10.0.0.1:50051\n"
    assert foreign in logging.getLogger().handlers


def test_job_log_carries_the_job_context() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(KeyValueFormatter("%(message)s"))
    logger = logging.getLogger("crawlfleet.test.job")
    logger.addHandler(handler)
    try:
        job = pb.LeasedJob(id=12, kind="scrape", attempt=2, lease_token="0123456789abcdef")
        job_log(logger, job).warning("slow")
    finally:
        logger.removeHandler(handler)
    assert out.getvalue() == "slow job_id=12 kind=scrape attempt=2 lease=01234567\n"


def test_log_level_flag() -> None:
    parser = argparse.ArgumentParser()
    add_log_level_flag(EnvFlags(parser, {"CRAWLFLEET_LOG_LEVEL": "debug"}))
    assert parser.parse_args([]).log_level == "DEBUG"
    assert parser.parse_args(["--log-level", "warning"]).log_level == "WARNING"
    with pytest.raises(SystemExit):
        parser.parse_args(["--log-level", "loud"])
