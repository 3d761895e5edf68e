"""The host calls of crawlfleet.v1.Admin: hosts, host policies, pause and resume.

``AdminServicer`` (admin.py) inherits them: one service, its host calls kept here with their own
store (storage/hosts.py). Changes that may let a host lease now (a policy, a resume) wake waiting
Lease calls by the NOTIFY of their statements, on every coordinator alike.
"""

from __future__ import annotations

import grpc

from crawlfleet.coordinator.api import convert
from crawlfleet.coordinator.api.admin_convert import page_size
from crawlfleet.coordinator.api.hosts_convert import (
    MAX_NOTE,
    MAX_PAUSE_REASON,
    cursor,
    host_message,
    host_name,
    host_pattern,
    host_prefix,
    pause_seconds,
    policy_concurrency,
    policy_delay_ms,
    policy_message,
)
from crawlfleet.coordinator.api.status import handles_errors
from crawlfleet.coordinator.politeness import Politeness, operator_pause_reason
from crawlfleet.coordinator.storage.hosts import HostAdmin
from crawlfleet.v1 import admin_pb2 as pb
from crawlfleet.v1 import admin_pb2_grpc

Ctx = grpc.aio.ServicerContext
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
# Queued jobs are counted per host up to these bounds (the answer says when there are more): a
# page of hosts with millions of queued jobs each stays cheap.
LIST_QUEUED_CAP = 10_000
GET_QUEUED_CAP = 100_000


class HostsServicer(admin_pb2_grpc.AdminServicer):
    """Hosts as the fleet's politeness sees them, and the operator's levers on them."""

    def __init__(self, hosts: HostAdmin, politeness: Politeness) -> None:
        self._hosts = hosts
        # The fleet defaults a host without a policy takes: this coordinator's flags.
        self._politeness = politeness

    @handles_errors
    async def ListHosts(self, request: pb.ListHostsRequest, context: Ctx) -> pb.ListHostsResponse:  # type: ignore[type-arg]
        """Hosts in host order after the page token, narrowed by the filters."""
        size = page_size(request.page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        rows = await self._hosts.list_hosts(
            after=cursor(request.page_token),
            prefix=host_prefix(request.host_prefix, "host_prefix"),
            paused_only=request.paused_only,
            queued_only=request.queued_only,
            limit=size,
            queued_cap=LIST_QUEUED_CAP,
        )
        next_token = rows[-1].host if len(rows) == size else ""
        return pb.ListHostsResponse(hosts=[host_message(r, self._politeness) for r in rows], next_page_token=next_token)

    @handles_errors
    async def GetHost(self, request: pb.GetHostRequest, context: Ctx) -> pb.GetHostResponse:  # type: ignore[type-arg]
        row = await self._hosts.get(host_name(request.host, "host"), queued_cap=GET_QUEUED_CAP)
        return pb.GetHostResponse(host=host_message(row, self._politeness))

    @handles_errors
    async def SetHostPolicy(
        self,
        request: pb.SetHostPolicyRequest,
        context: Ctx,  # type: ignore[type-arg]
    ) -> pb.SetHostPolicyResponse:
        """Upsert a policy; the hosts it matches take the policy in force at once."""
        change = await self._hosts.set_policy(
            host_pattern(request.pattern, "pattern"),
            max_concurrency=policy_concurrency(request),
            delay_ms=policy_delay_ms(request),
            obey_robots=request.obey_robots if request.HasField("obey_robots") else None,
            note=convert.bounded_text(request.note, "note", limit=MAX_NOTE),
        )
        return pb.SetHostPolicyResponse(policy=policy_message(change.policy), hosts_governed=change.hosts)

    @handles_errors
    async def ClearHostPolicy(
        self,
        request: pb.ClearHostPolicyRequest,
        context: Ctx,  # type: ignore[type-arg]
    ) -> pb.ClearHostPolicyResponse:
        change = await self._hosts.clear_policy(host_pattern(request.pattern, "pattern"))
        return pb.ClearHostPolicyResponse(policy=policy_message(change.policy), hosts_released=change.hosts)

    @handles_errors
    async def ListHostPolicies(
        self,
        request: pb.ListHostPoliciesRequest,
        context: Ctx,  # type: ignore[type-arg]
    ) -> pb.ListHostPoliciesResponse:
        size = page_size(request.page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        rows = await self._hosts.list_policies(after=cursor(request.page_token, pattern=True), limit=size)
        next_token = rows[-1].pattern if len(rows) == size else ""
        return pb.ListHostPoliciesResponse(policies=[policy_message(r) for r in rows], next_page_token=next_token)

    @handles_errors
    async def PauseHost(self, request: pb.PauseHostRequest, context: Ctx) -> pb.PauseHostResponse:  # type: ignore[type-arg]
        """Pause a host for a time or until resumed; a longer pause in force stays."""
        host = host_name(request.host, "host")
        seconds = pause_seconds(request)
        reason = convert.bounded_text(request.reason, "reason", limit=MAX_PAUSE_REASON)
        row = await self._hosts.pause(
            host, seconds=seconds, reason=operator_pause_reason(reason), queued_cap=GET_QUEUED_CAP
        )
        return pb.PauseHostResponse(host=host_message(row, self._politeness))

    @handles_errors
    async def ResumeHost(self, request: pb.ResumeHostRequest, context: Ctx) -> pb.ResumeHostResponse:  # type: ignore[type-arg]
        """End a host's pause and failures in a row now; a waiting Lease may take its jobs at once."""
        row = await self._hosts.resume(host_name(request.host, "host"), queued_cap=GET_QUEUED_CAP)
        return pb.ResumeHostResponse(host=host_message(row, self._politeness))
