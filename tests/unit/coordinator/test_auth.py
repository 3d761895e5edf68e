"""Tokens file, bearer metadata, roles and the loopback rule, without sockets."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from crawlfleet.common.channel import is_loopback_target
from crawlfleet.coordinator.errors import PermissionDenied, Unauthenticated
from crawlfleet.coordinator.security.auth import (
    Authenticator,
    Role,
    SecurityConfigError,
    TokenEntry,
    bearer_token,
    hash_token,
    may_call,
    parse_token_flag,
    parse_tokens,
)
from crawlfleet.coordinator.security.settings import SecuritySettings, hash_token_command, prepare
from crawlfleet.coordinator.settings import CoordinatorSettings
from crawlfleet.v1 import admin_pb2, crawls_pb2, job_queue_pb2

DIGEST = hash_token("s3cret")


def test_tokens_file_lines() -> None:
    text = f"# comment\n\n  worker : fleet-a : {DIGEST.upper()}  \nadmin:ops@example.com:{hash_token('x')}\n"
    first, second = parse_tokens(text)
    assert (first.role, first.name, first.digest) == (Role.WORKER, "fleet-a", DIGEST)
    assert second.role is Role.ADMIN
    assert DIGEST not in repr(first)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("worker:fleet-a", "expected role:name:sha256hex"),
        (f"root:fleet-a:{DIGEST}", "unknown role 'root'"),
        ("worker:fleet-a:s3cret", "64 lowercase hex digits"),
        (f"worker::{DIGEST}", "name must match"),
    ],
)
def test_bad_tokens_file_lines_name_the_line(line: str, message: str) -> None:
    with pytest.raises(SecurityConfigError, match=rf"tokens:2: .*{message}"):
        parse_tokens(f"# header\n{line}\n", "tokens")


def test_token_flag() -> None:
    entry = parse_token_flag("producer=abc=def")
    assert entry.role is Role.PRODUCER and entry.digest == hash_token("abc=def")
    for bad in ("producer", "producer=", "nobody=abc"):
        with pytest.raises(ValueError):
            parse_token_flag(bad)


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        (),
        (("authorization", "s3cret"),),
        (("authorization", "Basic s3cret"),),
        (("authorization", "Bearer"),),
        (("authorization", "Bearer two words"),),
        (("authorization", "Bearer s3cret"), ("authorization", "Bearer s3cret")),
        (("authorization", b"Bearer s3cret"),),
    ],
)
def test_malformed_authorization_is_unauthenticated(metadata: tuple[tuple[str, str | bytes], ...] | None) -> None:
    with pytest.raises(Unauthenticated):
        bearer_token(metadata)


def test_bearer_scheme_is_case_insensitive() -> None:
    assert bearer_token((("x-other", "1"), ("authorization", "bearer  s3cret "))) == "s3cret"


def test_authenticator_roles() -> None:
    auth = Authenticator([TokenEntry.from_token(Role.WORKER, "w", "s3cret")])
    lease = "/crawlfleet.v1.JobQueue/Lease"
    principal = auth.authorize(lease, (("authorization", "Bearer s3cret"),))
    assert principal is not None and principal.name == "w"
    with pytest.raises(PermissionDenied) as denied:
        auth.authorize("/crawlfleet.v1.JobQueue/Enqueue", (("authorization", "Bearer s3cret"),))
    assert denied.value.metadata == {"method": "/crawlfleet.v1.JobQueue/Enqueue", "role": "worker"}
    with pytest.raises(Unauthenticated):
        auth.authorize(lease, (("authorization", "Bearer wrong"),))
    assert auth.authorize("/grpc.health.v1.Health/Check", None) is None
    assert auth.authorize("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", None) is None


def test_role_policy() -> None:
    assert may_call(Role.PRODUCER, "/crawlfleet.v1.Admin/ListResults")
    assert not may_call(Role.PRODUCER, "/crawlfleet.v1.Admin/CancelJob")
    assert may_call(Role.PRODUCER, "/crawlfleet.v1.Crawls/WatchCrawl")  # a crawl's progress, as GetCrawl
    assert not may_call(Role.WORKER, "/crawlfleet.v1.Admin/GetJob")
    assert may_call(Role.ADMIN, "/crawlfleet.v1.Admin/SomethingNew")
    assert not may_call(Role.PRODUCER, "/crawlfleet.v1.Admin/SomethingNew")


def test_duplicate_tokens_are_refused() -> None:
    entry = TokenEntry.from_token(Role.WORKER, "w", "s3cret")
    with pytest.raises(SecurityConfigError, match="more than once"):
        Authenticator([entry, TokenEntry.from_token(Role.ADMIN, "a", "s3cret")])


@pytest.mark.parametrize(
    ("listen", "loopback"),
    [
        ("127.0.0.1:0", True),
        ("127.1.2.3:50051", True),
        ("localhost:50051", True),
        ("[::1]:50051", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        (":50051", False),
        ("10.0.0.5:50051", False),
        ("coordinator.internal:50051", False),
    ],
)
def test_is_loopback_listen_address(listen: str, loopback: bool) -> None:
    assert is_loopback_target(listen) is loopback


def test_no_tokens_on_loopback_is_allowed_and_said(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert prepare(SecuritySettings(), "127.0.0.1:0").interceptors == ()
    assert "auth disabled: no tokens configured (loopback only)" in caplog.text


def test_no_tokens_elsewhere_needs_insecure_no_auth() -> None:
    with pytest.raises(SecurityConfigError, match="--insecure-no-auth"):
        prepare(SecuritySettings(), "0.0.0.0:50051")
    assert prepare(SecuritySettings(insecure_no_auth=True), "0.0.0.0:50051").interceptors == ()
    tokens = (TokenEntry.from_token(Role.ADMIN, "a", "s3cret"),)
    assert len(prepare(SecuritySettings(tokens=tokens), "0.0.0.0:50051").interceptors) == 1


def test_tls_flags_are_checked(tmp_path: Path) -> None:
    cert = tmp_path / "server.crt"
    with pytest.raises(SecurityConfigError, match="go together"):
        prepare(SecuritySettings(tls_cert=cert), "127.0.0.1:0")
    with pytest.raises(SecurityConfigError, match="needs --tls-cert"):
        prepare(SecuritySettings(tls_client_ca=cert), "127.0.0.1:0")
    with pytest.raises(SecurityConfigError, match="cannot read TLS"):
        prepare(SecuritySettings(tls_cert=cert, tls_key=cert), "127.0.0.1:0")
    cert.write_text("not pem")
    with pytest.raises(SecurityConfigError, match="not a PEM file"):
        prepare(SecuritySettings(tls_cert=cert, tls_key=cert), "127.0.0.1:0")


def test_missing_tokens_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(SecurityConfigError, match="cannot read tokens file"):
        prepare(SecuritySettings(tokens_file=tmp_path / "absent"), "127.0.0.1:0")


def test_an_empty_tokens_file_does_not_turn_auth_off(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text("# every token was commented out\n\n")
    with pytest.raises(SecurityConfigError, match="holds no tokens"):
        prepare(SecuritySettings(tokens_file=tokens_file), "127.0.0.1:0")


def test_security_flags_and_env() -> None:
    env = {"CRAWLFLEET_TOKENS_FILE": "/etc/crawlfleet/tokens", "CRAWLFLEET_INSECURE_NO_AUTH": "true"}
    _, settings = CoordinatorSettings.from_args(
        ["--token", "admin=dev", "--tls-cert", "s.crt", "--tls-key", "s.key", "--tls-client-ca", "ca.crt"], env
    )
    security = settings.security
    assert security.tokens_file == Path("/etc/crawlfleet/tokens")
    assert [(e.role, e.digest) for e in security.tokens] == [(Role.ADMIN, hash_token("dev"))]
    assert (security.tls_cert, security.tls_key, security.tls_client_ca) == (
        Path("s.crt"),
        Path("s.key"),
        Path("ca.crt"),
    )
    assert security.insecure_no_auth
    command, defaults = CoordinatorSettings.from_args(["hash-token"], {})
    assert command == "hash-token" and defaults.security == SecuritySettings()


def test_hash_token_command() -> None:
    out = io.StringIO()
    hash_token_command(io.StringIO("s3cret\n"), out)
    assert out.getvalue() == DIGEST + "\n"
    with pytest.raises(SecurityConfigError):
        hash_token_command(io.StringIO(""), io.StringIO())


def test_a_viewer_reads_everything_and_changes_nothing() -> None:
    verbs_that_change = ("Cancel", "Requeue", "Purge", "Set", "Clear", "Pause", "Resume", "Start", "Refresh")
    for file in (admin_pb2, crawls_pb2, job_queue_pb2):
        for service in file.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                name = f"/{service.full_name}/{method.name}"
                if method.name.startswith(verbs_that_change):
                    assert not may_call(Role.VIEWER, name), name
    for read in (
        "Admin/GetQueueHealth",
        "Admin/GetQueueActivity",
        "Admin/ListJobs",
        "Admin/GetThumbnail",
        "Admin/ListHosts",
        "Crawls/WatchCrawl",
        "Crawls/ListCrawls",
    ):
        assert may_call(Role.VIEWER, f"/crawlfleet.v1.{read}"), read
    for work in ("JobQueue/Lease", "JobQueue/Complete", "JobQueue/Enqueue"):
        assert not may_call(Role.VIEWER, f"/crawlfleet.v1.{work}"), work
