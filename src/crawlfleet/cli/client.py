"""The library client of the command's settings, and the one place its errors become messages that
say what to do (see docs/cli.md).

The CLI uses the blocking ``crawlfleet.client.Client``: commands make one call after another, and
a blocking client is the simplest thing that can be run (and tested) from any thread.
"""

from __future__ import annotations

from crawlfleet.cli.errors import EXIT_FAILED, EXIT_UNREACHABLE, CliError, UsageError
from crawlfleet.cli.settings import CliSettings
from crawlfleet.client import (
    Client,
    ClientError,
    ClientSettings,
    ConfigurationError,
    DeadlineExceeded,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

_REACH_HINT = "is it running? (--coordinator / CRAWLFLEET_COORDINATOR)"


def open_client(settings: CliSettings) -> Client:
    """A client of the coordinator the settings name; an unreadable TLS file is a usage error."""
    try:
        return Client.from_settings(
            ClientSettings(
                coordinator=settings.coordinator, security=settings.security, call_timeout=settings.call_timeout
            )
        )
    except ConfigurationError as error:
        raise UsageError(error.message) from None


def describe_error(error: ClientError, settings: CliSettings) -> CliError:
    """What went wrong, and what to do about it."""
    address = settings.coordinator
    details = error.message
    if isinstance(error, ConfigurationError):
        return UsageError(details)
    if isinstance(error, DeadlineExceeded):
        return CliError(
            f"the coordinator at {address} did not answer within {settings.call_timeout:g}s (--call-timeout)",
            EXIT_UNREACHABLE,
        )
    if isinstance(error, Unavailable):
        if error.answered:  # the coordinator answered: draining, or its database is down
            return CliError(f"the coordinator at {address} is unavailable: {details}", EXIT_UNREACHABLE)
        if error.tls_failed:
            return CliError(
                f"TLS with the coordinator at {address} failed: {details} (check --tls-ca, --tls-cert, --tls-key)",
                EXIT_UNREACHABLE,
            )
        hint = "" if settings.uses_tls else "; if it uses TLS, pass --tls-ca or --tls"
        return CliError(f"cannot reach the coordinator at {address}: {_REACH_HINT}{hint}", EXIT_UNREACHABLE)
    if isinstance(error, Unauthenticated):
        return CliError(
            f"the coordinator at {address} refused the call: {details}; set --token or CRAWLFLEET_TOKEN",
            EXIT_UNREACHABLE,
        )
    if isinstance(error, PermissionDenied):
        return CliError(f"permission denied: {details}; use a token with the admin role", EXIT_UNREACHABLE)
    if isinstance(error, InvalidArgument):
        field = error.field
        where = f" (field {field})" if field and not details.startswith(field) else ""
        return CliError(f"the coordinator rejected the request: {details}{where}", EXIT_FAILED, field=field)
    if isinstance(error, ResourceExhausted):
        return CliError(f"the call failed with RESOURCE_EXHAUSTED: {details}", EXIT_FAILED)
    # NotFound and Conflict say what is wrong; other failures name their code in the message.
    return CliError(details, EXIT_FAILED)
