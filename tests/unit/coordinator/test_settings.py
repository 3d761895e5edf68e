"""The coordinator's flags and their ``CRAWLFLEET_*`` variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawlfleet.coordinator.settings import DEFAULT_LISTEN, CoordinatorSettings, build_parser


def test_defaults_without_flags_or_env() -> None:
    command, settings = CoordinatorSettings.from_args([], {})
    assert command == "serve"
    assert settings.listen == DEFAULT_LISTEN and settings.database_url is None
    assert settings.migrate_on_start and settings.log_level == "INFO"


def test_env_then_flags() -> None:
    env = {
        "CRAWLFLEET_LISTEN": "0.0.0.0:6000",
        "CRAWLFLEET_POOL_SIZE": "3",
        "CRAWLFLEET_NO_MIGRATE": "true",
        "CRAWLFLEET_LOG_LEVEL": "debug",
        "CRAWLFLEET_DATA_DIR": "/srv/pg",
    }
    command, settings = CoordinatorSettings.from_args(["migrate", "--pool-size", "4"], env)
    assert command == "migrate"
    assert (settings.listen, settings.pool_size, settings.data_dir) == ("0.0.0.0:6000", 4, Path("/srv/pg"))
    assert not settings.migrate_on_start and settings.log_level == "DEBUG"


def test_database_url_prefers_the_conventional_variable() -> None:
    env = {"DATABASE_URL": "postgresql://a/x", "CRAWLFLEET_DATABASE_URL": "postgresql://b/x"}
    assert CoordinatorSettings.from_args([], env)[1].database_url == "postgresql://a/x"
    env["DATABASE_URL"] = ""
    assert CoordinatorSettings.from_args([], env)[1].database_url == "postgresql://b/x"


@pytest.mark.parametrize(
    "env", [{"CRAWLFLEET_LOG_LEVEL": "loud"}, {"CRAWLFLEET_NO_MIGRATE": "maybe"}, {"CRAWLFLEET_POOL_SIZE": "x"}]
)
def test_bad_variables_are_usage_errors(env: dict[str, str]) -> None:
    with pytest.raises(SystemExit) as exc_info:
        CoordinatorSettings.from_args([], env)
    assert exc_info.value.code == 2


def test_help_shows_defaults_and_variables_but_not_the_dsn() -> None:
    text = " ".join(build_parser({"DATABASE_URL": "postgresql://u:hunter2@db/x"}).format_help().split())
    assert "(default: 127.0.0.1:50051; env CRAWLFLEET_LISTEN)" in text
    assert "(default: 30; env CRAWLFLEET_LEASE_SECONDS)" in text
    assert "env DATABASE_URL or CRAWLFLEET_DATABASE_URL" in text
    assert "hunter2" not in text


def test_max_watch_streams_from_the_variable_or_the_flag() -> None:
    assert CoordinatorSettings.from_args([], {})[1].max_watch_streams == 100
    env = {"CRAWLFLEET_MAX_WATCH_STREAMS": "7"}
    assert CoordinatorSettings.from_args([], env)[1].max_watch_streams == 7
    assert CoordinatorSettings.from_args(["--max-watch-streams", "3"], env)[1].max_watch_streams == 3
    with pytest.raises(SystemExit):
        CoordinatorSettings.from_args(["--max-watch-streams", "0"], {})


def test_statement_bounds_from_flags_and_env() -> None:
    env = {"CRAWLFLEET_LOCK_TIMEOUT_SECONDS": "0.5"}
    _, settings = CoordinatorSettings.from_args(["--statement-timeout-seconds", "0"], env)
    assert (settings.lock_timeout_seconds, settings.statement_timeout_seconds) == (0.5, 0.0)
