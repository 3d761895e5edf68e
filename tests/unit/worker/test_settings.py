from __future__ import annotations

import dataclasses
import os
import socket

import pytest

from crawlfleet.worker import settings as s
from crawlfleet.worker.settings import WorkerSettings


def test_defaults_without_flags_or_env() -> None:
    cfg = WorkerSettings.from_args([], env={})
    assert cfg.coordinator == s.DEFAULT_COORDINATOR
    assert cfg.slots == s.DEFAULT_SLOTS
    assert cfg.kinds == ("scrape", "sitemap", "noop")  # every kind
    assert cfg.lease_wait == s.DEFAULT_LEASE_WAIT
    assert cfg.shutdown_grace == s.DEFAULT_SHUTDOWN_GRACE
    assert cfg.complete_batch_max == s.DEFAULT_COMPLETE_BATCH_MAX
    assert cfg.complete_flush_interval == s.DEFAULT_COMPLETE_FLUSH_INTERVAL
    assert cfg.heartbeat_fraction == pytest.approx(1 / 3)
    assert cfg.scrape.max_body_bytes == 5 * 1024 * 1024
    assert cfg.scrape.allow_loopback is False
    assert (cfg.sitemap.max_urls, cfg.sitemap.max_bytes, cfg.sitemap.max_files) == (50_000, 50 * 1024 * 1024, 50)
    assert cfg.log_level == "INFO"


def test_default_worker_id_is_host_pid_random() -> None:
    worker_id = WorkerSettings.from_args([], env={}).worker_id
    host, pid, rand = worker_id.rsplit("-", 2)
    assert host == socket.gethostname()
    assert pid == str(os.getpid())
    assert len(rand) == 4 and int(rand, 16) >= 0


def test_env_sets_defaults_and_flags_win() -> None:
    env = {
        "CRAWLFLEET_COORDINATOR": "coord:1",
        "CRAWLFLEET_SLOTS": "3",
        "CRAWLFLEET_KINDS": "noop",
        "CRAWLFLEET_LEASE_WAIT": "2.5",
        "CRAWLFLEET_ALLOW_LOOPBACK": "true",
        "CRAWLFLEET_WORKER_ID": "w-env",
        "CRAWLFLEET_LOG_LEVEL": "debug",
    }
    cfg = WorkerSettings.from_args([], env=env)
    assert (cfg.coordinator, cfg.slots, cfg.kinds, cfg.lease_wait) == ("coord:1", 3, ("noop",), 2.5)
    assert cfg.scrape.allow_loopback is True
    assert cfg.worker_id == "w-env"
    assert cfg.log_level == "DEBUG"

    cfg = WorkerSettings.from_args(
        ["--slots", "5", "--kinds", "scrape, noop,scrape", "--no-allow-loopback", "--worker-id", "w-flag"], env=env
    )
    assert cfg.slots == 5
    assert cfg.kinds == ("scrape", "noop")
    assert cfg.scrape.allow_loopback is False
    assert cfg.worker_id == "w-flag"


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["--slots", "0"], {}),
        ([], {"CRAWLFLEET_SLOTS": "many"}),
        ([], {"CRAWLFLEET_ALLOW_LOOPBACK": "maybe"}),
        (["--lease-wait", "-1"], {}),
        (["--heartbeat-fraction", "1.5"], {}),
        (["--slots", "1001"], {}),
        (["--kinds", " , "], {}),
        (["--log-level", "loud"], {}),
        (["--sitemap-max-urls", "50001"], {}),
        (["--sitemap-max-bytes", "0"], {}),
        ([], {"CRAWLFLEET_SITEMAP_MAX_FILES": "1001"}),
        (["--browser-blank-page", "sometimes"], {}),
    ],
)
def test_invalid_values_exit_with_usage(
    argv: list[str], env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc_info:
        WorkerSettings.from_args(argv, env=env)
    assert exc_info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_sitemap_limits_may_be_set_lower() -> None:
    cfg = WorkerSettings.from_args(
        ["--sitemap-max-urls", "100", "--sitemap-max-bytes", "1048576"], env={"CRAWLFLEET_SITEMAP_MAX_FILES": "5"}
    )
    assert (cfg.sitemap.max_urls, cfg.sitemap.max_bytes, cfg.sitemap.max_files) == (100, 1024 * 1024, 5)


def test_the_browser_blank_page_is_kept_unless_turned_off() -> None:
    assert WorkerSettings.from_args([], env={}).scrape.browser_blank_page
    assert not WorkerSettings.from_args(["--browser-blank-page", "off"], env={}).scrape.browser_blank_page
    assert not WorkerSettings.from_args([], env={"CRAWLFLEET_BROWSER_BLANK_PAGE": "no"}).scrape.browser_blank_page


def test_settings_are_frozen_and_keyword_only() -> None:
    cfg = WorkerSettings(worker_id="w")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.slots = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        WorkerSettings("127.0.0.1:1")  # type: ignore[call-arg]
