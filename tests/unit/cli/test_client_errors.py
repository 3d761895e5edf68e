"""The library's errors become the command's messages and exit codes (docs/cli.md), one case each."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from crawlfleet.cli.client import describe_error
from crawlfleet.cli.errors import EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE
from crawlfleet.cli.settings import CliSettings
from crawlfleet.client import (
    ClientError,
    ConfigurationError,
    Conflict,
    DeadlineExceeded,
    InvalidArgument,
    JobsNotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from crawlfleet.common.channel import ChannelSecurity

PLAIN = CliSettings(coordinator="10.0.0.5:50051", call_timeout=7.0)
TLS = CliSettings(coordinator="10.0.0.5:50051", security=ChannelSecurity(tls_ca=Path("ca.pem")))


@pytest.mark.parametrize(
    ("error", "settings", "code", "message"),
    [
        (
            Unavailable("failed to connect to all addresses", code=grpc.StatusCode.UNAVAILABLE),
            PLAIN,
            EXIT_UNREACHABLE,
            "cannot reach the coordinator at 10.0.0.5:50051: is it running? (--coordinator / CRAWLFLEET_COORDINATOR)"
            "; if it uses TLS, pass --tls-ca or --tls",
        ),
        (
            Unavailable("failed to connect to all addresses", code=grpc.StatusCode.UNAVAILABLE),
            TLS,
            EXIT_UNREACHABLE,
            "cannot reach the coordinator at 10.0.0.5:50051: is it running? (--coordinator / CRAWLFLEET_COORDINATOR)",
        ),
        (
            Unavailable("Ssl handshake failed", code=grpc.StatusCode.UNAVAILABLE),
            TLS,
            EXIT_UNREACHABLE,
            "TLS with the coordinator at 10.0.0.5:50051 failed: Ssl handshake failed (check --tls-ca, --tls-cert, "
            "--tls-key)",
        ),
        (
            Unavailable("shutting down", code=grpc.StatusCode.UNAVAILABLE, reason="DRAINING"),
            PLAIN,
            EXIT_UNREACHABLE,
            "the coordinator at 10.0.0.5:50051 is unavailable: shutting down",
        ),
        (
            DeadlineExceeded("Deadline Exceeded", code=grpc.StatusCode.DEADLINE_EXCEEDED),
            PLAIN,
            EXIT_UNREACHABLE,
            "the coordinator at 10.0.0.5:50051 did not answer within 7s (--call-timeout)",
        ),
        (
            Unauthenticated("no token", code=grpc.StatusCode.UNAUTHENTICATED),
            PLAIN,
            EXIT_UNREACHABLE,
            "the coordinator at 10.0.0.5:50051 refused the call: no token; set --token or CRAWLFLEET_TOKEN",
        ),
        (
            PermissionDenied("producer may not", code=grpc.StatusCode.PERMISSION_DENIED),
            PLAIN,
            EXIT_UNREACHABLE,
            "permission denied: producer may not; use a token with the admin role",
        ),
        (
            InvalidArgument("must be 0 to 100", field="jobs[0].priority"),
            PLAIN,
            EXIT_FAILED,
            "the coordinator rejected the request: must be 0 to 100 (field jobs[0].priority)",
        ),
        (
            InvalidArgument("jobs[0].priority: must be 0 to 100", field="jobs[0].priority"),
            PLAIN,
            EXIT_FAILED,
            "the coordinator rejected the request: jobs[0].priority: must be 0 to 100",
        ),
        (JobsNotFound([7]), PLAIN, EXIT_FAILED, "job 7 does not exist"),
        (
            Conflict("job 7 is not dead", code=grpc.StatusCode.FAILED_PRECONDITION),
            PLAIN,
            EXIT_FAILED,
            "job 7 is not dead",
        ),
        (
            ResourceExhausted("too big", code=grpc.StatusCode.RESOURCE_EXHAUSTED),
            PLAIN,
            EXIT_FAILED,
            "the call failed with RESOURCE_EXHAUSTED: too big",
        ),
        (
            ClientError("the call failed with INTERNAL: boom", code=grpc.StatusCode.INTERNAL),
            PLAIN,
            EXIT_FAILED,
            "the call failed with INTERNAL: boom",
        ),
        (ConfigurationError("cannot read --tls-ca ca.pem: No such file"), TLS, EXIT_USAGE, "cannot read --tls-ca"),
    ],
)
def test_messages_and_exit_codes(error: ClientError, settings: CliSettings, code: int, message: str) -> None:
    described = describe_error(error, settings)
    assert described.exit_code == code
    assert described.message.startswith(message), described.message


def test_an_invalid_field_is_kept_for_the_enqueue_message() -> None:
    described = describe_error(InvalidArgument("bad", field="jobs[3].scrape.url"), PLAIN)
    assert described.field == "jobs[3].scrape.url"
