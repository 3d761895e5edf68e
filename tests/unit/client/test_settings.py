"""A client configured by the CRAWLFLEET_* variables the command reads, or by its arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawlfleet.client import Client, ClientSettings, ConfigurationError, settings_from_env
from crawlfleet.client.settings import DEFAULT_CALL_TIMEOUT, DEFAULT_COORDINATOR


def test_defaults_without_variables() -> None:
    settings = settings_from_env({})
    assert settings.coordinator == DEFAULT_COORDINATOR and settings.call_timeout == DEFAULT_CALL_TIMEOUT
    assert settings.security.token is None and not settings.security.uses_tls


def test_reads_the_commands_variables(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    settings = settings_from_env(
        {
            "CRAWLFLEET_COORDINATOR": "coordinator.internal:443",
            "CRAWLFLEET_TOKEN_FILE": str(token_file),
            "CRAWLFLEET_TLS_CA": str(tmp_path / "ca.pem"),
            "CRAWLFLEET_CALL_TIMEOUT": "7.5",
            "CRAWLFLEET_JSON": "1",  # the command's own; ignored here
        }
    )
    assert settings.coordinator == "coordinator.internal:443" and settings.call_timeout == 7.5
    assert settings.security.token == "s3cret" and settings.security.tls_ca == tmp_path / "ca.pem"
    assert settings.security.uses_tls
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("environ", "words"),
    [
        ({"CRAWLFLEET_CALL_TIMEOUT": "soon"}, "call-timeout"),
        ({"CRAWLFLEET_CALL_TIMEOUT": "0"}, "call_timeout must be positive"),
        ({"CRAWLFLEET_TLS": "maybe"}, "CRAWLFLEET_TLS"),
        ({"CRAWLFLEET_TLS_CERT": "client.pem"}, "--tls-cert and --tls-key"),
        ({"CRAWLFLEET_TOKEN_FILE": "/nonexistent/token"}, "cannot read --token-file"),
        ({"CRAWLFLEET_TOKEN": "has space"}, "printable ASCII"),
    ],
)
def test_unusable_values_are_configuration_errors(environ: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        settings_from_env(environ)


def test_client_arguments_are_checked_when_it_is_made(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="go together"):
        Client("127.0.0.1:1", tls_cert=tmp_path / "cert.pem")
    with pytest.raises(ConfigurationError, match="cannot read --tls-ca"):
        Client("127.0.0.1:1", tls_ca=tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="positive"):  # a ConfigurationError is a ValueError too
        ClientSettings(call_timeout=0)


def test_from_env_builds_a_client_with_those_settings() -> None:
    with Client.from_env({"CRAWLFLEET_COORDINATOR": "127.0.0.1:1", "CRAWLFLEET_CALL_TIMEOUT": "3"}) as client:
        assert client.settings.coordinator == "127.0.0.1:1" and client.settings.call_timeout == 3.0


def test_the_callers_channel_options_replace_the_librarys() -> None:
    default = ClientSettings().options()
    assert ("grpc.max_receive_message_length", 64 * 1024 * 1024) in default
    mine = ClientSettings(channel_options=(("grpc.max_receive_message_length", 1024), ("grpc.enable_retries", 0)))
    assert sorted(mine.options()) == [("grpc.enable_retries", 0), ("grpc.max_receive_message_length", 1024)]
