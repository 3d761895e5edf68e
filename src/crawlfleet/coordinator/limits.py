"""Resource bounds of the coordinator's gRPC server: HTTP/2 streams, idle connections, keepalive,
message size and the request bytes in flight. Flags under "limits"; see docs/operations.md.

Why each bound exists:
- ``max_concurrent_streams``: without it one connection may open streams without end (50,000
  half-sent unauthenticated calls were held, never freed). Calls past the bound wait in the client
  for a free stream; they are not refused.
- ``max_connection_idle_seconds``: a connection with no call in flight is closed after this long, so
  abandoned clients do not hold sockets and transport buffers. A connection with an open call (a
  WatchJobs stream, a long-polling Lease) is never idle, so it is never cut by this.
- keepalive: the server pings a quiet connection every ``keepalive_seconds`` and closes it when no
  answer comes within ``keepalive_timeout_seconds`` (a peer that vanished). Clients may ping as
  often as every ``min_client_ping_seconds``, with or without calls; faster pingers are told to go
  away (GOAWAY too_many_pings), as HTTP/2 flood protection.
- ``max_message_bytes``: the largest request (and response) message; bigger ones are refused by
  gRPC with RESOURCE_EXHAUSTED before they reach a servicer.
- ``max_request_bytes_in_flight``: see ``coordinator/inflight.py``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from crawlfleet.common.flags import EnvFlags, positive_float, positive_int

DEFAULT_MAX_CONCURRENT_STREAMS = 100  # RFC 9113 advises no fewer than 100
DEFAULT_MAX_CONNECTION_IDLE_SECONDS = 300.0
DEFAULT_KEEPALIVE_SECONDS = 60.0
DEFAULT_KEEPALIVE_TIMEOUT_SECONDS = 20.0
# Workers ping every 30 s while calls are open; allow three times that rate.
DEFAULT_MIN_CLIENT_PING_SECONDS = 10.0
# A Complete of a full result batch fits (the worker keeps each result under the caps of
# common/result_limits.py and a batch under this size).
DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_REQUEST_BYTES_IN_FLIGHT = 64 * 1024 * 1024
# Pings a client may send too fast before the server closes the connection.
_MAX_PING_STRIKES = 2


@dataclass(frozen=True, kw_only=True)
class ServerLimits:
    max_concurrent_streams: int = DEFAULT_MAX_CONCURRENT_STREAMS
    max_connection_idle_seconds: float = DEFAULT_MAX_CONNECTION_IDLE_SECONDS
    keepalive_seconds: float = DEFAULT_KEEPALIVE_SECONDS
    keepalive_timeout_seconds: float = DEFAULT_KEEPALIVE_TIMEOUT_SECONDS
    min_client_ping_seconds: float = DEFAULT_MIN_CLIENT_PING_SECONDS
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_request_bytes_in_flight: int = DEFAULT_MAX_REQUEST_BYTES_IN_FLIGHT

    def __post_init__(self) -> None:
        if self.max_request_bytes_in_flight < self.max_message_bytes:
            # Otherwise a request of the largest allowed size could never be served.
            raise ValueError("max_request_bytes_in_flight must be at least max_message_bytes")

    def grpc_options(self) -> list[tuple[str, int]]:
        """The ``grpc.aio.server`` options that apply these limits."""
        return [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_concurrent_streams", self.max_concurrent_streams),
            ("grpc.max_connection_idle_ms", _ms(self.max_connection_idle_seconds)),
            ("grpc.keepalive_time_ms", _ms(self.keepalive_seconds)),
            ("grpc.keepalive_timeout_ms", _ms(self.keepalive_timeout_seconds)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", _ms(self.min_client_ping_seconds)),
            ("grpc.http2.max_ping_strikes", _MAX_PING_STRIKES),
        ]


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def add_limit_flags(flags: EnvFlags) -> None:
    """The ``limits`` flags of ``crawlfleet-coordinator``; each reads its CRAWLFLEET_<FLAG> variable."""
    flags.add(
        "--max-concurrent-streams",
        DEFAULT_MAX_CONCURRENT_STREAMS,
        "calls open at once on one client connection (HTTP/2 streams); more wait in the client",
        type=positive_int,
    )
    flags.add(
        "--max-connection-idle-seconds",
        DEFAULT_MAX_CONNECTION_IDLE_SECONDS,
        "close a client connection that has had no call open this long",
        type=positive_float,
    )
    flags.add(
        "--keepalive-seconds",
        DEFAULT_KEEPALIVE_SECONDS,
        "ping a quiet client connection this often, to notice peers that vanished",
        type=positive_float,
    )
    flags.add(
        "--keepalive-timeout-seconds",
        DEFAULT_KEEPALIVE_TIMEOUT_SECONDS,
        "close a connection whose ping is not answered within this time",
        type=positive_float,
    )
    flags.add(
        "--min-client-ping-seconds",
        DEFAULT_MIN_CLIENT_PING_SECONDS,
        "clients may send keepalive pings this often at most; faster ones are disconnected",
        type=positive_float,
    )
    flags.add(
        "--max-message-bytes",
        DEFAULT_MAX_MESSAGE_BYTES,
        "largest request or response message; larger requests are refused (RESOURCE_EXHAUSTED)",
        type=positive_int,
    )
    flags.add(
        "--max-request-bytes-in-flight",
        DEFAULT_MAX_REQUEST_BYTES_IN_FLIGHT,
        "total size of large requests handled at once; beyond it they are refused with a retry hint "
        "(RESOURCE_EXHAUSTED); at least --max-message-bytes",
        type=positive_int,
    )


def limits_from_args(args: argparse.Namespace) -> ServerLimits:
    try:
        return ServerLimits(
            max_concurrent_streams=args.max_concurrent_streams,
            max_connection_idle_seconds=args.max_connection_idle_seconds,
            keepalive_seconds=args.keepalive_seconds,
            keepalive_timeout_seconds=args.keepalive_timeout_seconds,
            min_client_ping_seconds=args.min_client_ping_seconds,
            max_message_bytes=args.max_message_bytes,
            max_request_bytes_in_flight=args.max_request_bytes_in_flight,
        )
    except ValueError as exc:
        raise SystemExit(f"crawlfleet-coordinator: {exc}") from exc
