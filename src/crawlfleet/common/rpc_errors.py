"""The machine-readable part of a failed call: the ``google.rpc.ErrorInfo`` in its status details.

The coordinator answers every refusal with a status code and an ``ErrorInfo`` (see docs/queue-semantics.md):
a reason such as ``LEASE_LOST`` and metadata such as the offending ``field`` or the lost
``job_ids``. Clients read it here, whether the call was blocking (``grpc.RpcError``) or asyncio
(``grpc.aio.AioRpcError``), and decide from the code and the reason what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "crawlfleet.v1"
# Metadata keys of the coordinator's ErrorInfo.
FIELD_KEY = "field"
JOB_IDS_KEY = "job_ids"
# Reasons a client acts on.
REASON_LEASE_LOST = "LEASE_LOST"
REASON_IMAGE_NOT_STORED = "IMAGE_NOT_STORED"
REASON_INVALID_FIELD = "INVALID_FIELD"
REASON_DRAINING = "DRAINING"
REASON_DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
# A statement hit the coordinator's lock or statement timeout (e.g. a row held elsewhere): retry.
REASON_DATABASE_BUSY = "DATABASE_BUSY"


@dataclass(frozen=True, kw_only=True)
class ErrorDetails:
    """The ``ErrorInfo`` of a failed call; all empty when the status carried none."""

    reason: str = ""
    domain: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def field(self) -> str | None:
        """The request field an ``INVALID_ARGUMENT`` names (``jobs[3].scrape.url``), if any."""
        return self.metadata.get(FIELD_KEY) or None

    @property
    def job_ids(self) -> frozenset[int]:
        """The jobs the error names (the lost ones of ``LEASE_LOST``); empty if it names none."""
        return parse_job_ids(self.metadata.get(JOB_IDS_KEY, ""))


def rich_status(error: grpc.RpcError) -> status_pb2.Status | None:
    """The ``google.rpc.Status`` a failed call carried in its trailers, or None.

    None also when the details cannot be trusted: undecodable, or disagreeing with the call's own
    code and message. The status code alone still tells the caller what to do.
    """
    if not hasattr(error, "trailing_metadata"):
        return None  # a bare grpc.RpcError: not a finished call
    try:
        return rpc_status.from_call(cast(grpc.Call, error))
    except (ValueError, DecodeError):
        return None


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The first ``ErrorInfo`` in a failed call's status details, as the protobuf message, or None."""
    status = rich_status(error)
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    return None


def error_details(error: grpc.RpcError) -> ErrorDetails:
    """The reason, domain and metadata of a failed call (empty ones when it carried none)."""
    info = error_info(error)
    if info is None:
        return ErrorDetails()
    return ErrorDetails(reason=info.reason, domain=info.domain, metadata=dict(info.metadata))


def parse_job_ids(text: str) -> frozenset[int]:
    """Parses ``"1,2,3"``; malformed parts are skipped rather than trusted."""
    ids: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if part.lstrip("-").isdigit():
            ids.add(int(part))
    return frozenset(ids)
