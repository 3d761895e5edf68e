"""Hosts and host policies as operators see and steer them (the Admin service's host calls), and
the figures of the host gauges. Claims, and what failures do to a host, are queue.py's.

Every method is one short transaction over named statements (statements.py) and returns typed
rows; driver errors become coordinator errors (translate.py). docs/politeness.md says what the
hosts table holds and who may move a host's ready_at.
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from crawlfleet.coordinator.errors import HostNotFound, HostPolicyNotFound
from crawlfleet.coordinator.storage import statements as q
from crawlfleet.coordinator.storage.host_rows import HostGauges, HostPolicyRow, HostRow, PolicyChange
from crawlfleet.coordinator.storage.translate import connection


class HostAdmin:
    """Host queries over an asyncpg pool. `now` parameters exist so tests control time;
    `queued_cap` bounds the count of each host's queued jobs."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get(self, host: str, *, queued_cap: int, now: dt.datetime | None = None) -> HostRow:
        """One host; HostNotFound when no job was ever enqueued for it."""
        async with connection(self._pool) as conn:
            row = await q.HOST_GET.fetch_one(conn, host=host, queued_cap=queued_cap, now=now)
        if row is None:
            raise HostNotFound(host)
        return row

    async def list_hosts(
        self,
        *,
        after: str | None,
        prefix: str | None,
        paused_only: bool,
        queued_only: bool,
        limit: int,
        queued_cap: int,
        now: dt.datetime | None = None,
    ) -> list[HostRow]:
        """Hosts after `after` in host order, narrowed by the filters."""
        async with connection(self._pool) as conn:
            return await q.HOST_LIST.fetch(
                conn,
                after_host=after,
                host_prefix=prefix,
                paused_only=paused_only,
                queued_only=queued_only,
                limit=limit,
                queued_cap=queued_cap,
                now=now,
            )

    async def pause(
        self, host: str, *, seconds: float | None, reason: str, queued_cap: int, now: dt.datetime | None = None
    ) -> HostRow:
        """Pause a host for `seconds` (None: until resumed); the host afterwards."""
        async with connection(self._pool) as conn, conn.transaction():
            paused = await q.HOST_PAUSE.fetch_one(
                conn, host=host, pause_ms=None if seconds is None else seconds * 1000, reason=reason, now=now
            )
            if paused is None:
                raise HostNotFound(host)
            row = await q.HOST_GET.fetch_one(conn, host=host, queued_cap=queued_cap, now=now)
        assert row is not None  # updated in this transaction
        return row

    async def resume(self, host: str, *, queued_cap: int, now: dt.datetime | None = None) -> HostRow:
        """End a host's pause and its failures in a row; the host afterwards."""
        async with connection(self._pool) as conn, conn.transaction():
            if await q.HOST_RESUME.fetch_one(conn, host=host, now=now) is None:
                raise HostNotFound(host)
            row = await q.HOST_GET.fetch_one(conn, host=host, queued_cap=queued_cap, now=now)
        assert row is not None  # updated in this transaction
        return row

    async def set_policy(
        self,
        pattern: str,
        *,
        max_concurrency: int | None,
        delay_ms: int | None,
        obey_robots: bool | None,
        note: str,
        now: dt.datetime | None = None,
    ) -> PolicyChange:
        """Set a pattern's policy and copy it into the hosts it matches; with the hosts it governs."""
        async with connection(self._pool) as conn, conn.transaction():
            await q.HOST_POLICY_LOCK.execute(conn)
            policy = await q.HOST_POLICY_UPSERT.fetch_one(
                conn,
                pattern=pattern,
                max_concurrency=max_concurrency,
                delay_ms=delay_ms,
                obey_robots=obey_robots,
                note=note,
                now=now,
            )
            assert policy is not None  # an upsert returns its row
            await q.HOST_POLICY_APPLY.execute(conn, pattern=pattern)
            governed = await q.HOST_POLICY_GOVERNED.fetch_one(conn, pattern=pattern)
        return PolicyChange(policy, governed.hosts if governed else 0)

    async def clear_policy(self, pattern: str) -> PolicyChange:
        """Remove a pattern's policy (HostPolicyNotFound without one); with the hosts it governed."""
        async with connection(self._pool) as conn, conn.transaction():
            await q.HOST_POLICY_LOCK.execute(conn)
            governed = await q.HOST_POLICY_GOVERNED.fetch_one(conn, pattern=pattern)
            policy = await q.HOST_POLICY_DELETE.fetch_one(conn, pattern=pattern)
            if policy is None:
                raise HostPolicyNotFound(pattern)
            await q.HOST_POLICY_APPLY.execute(conn, pattern=pattern)
        return PolicyChange(policy, governed.hosts if governed else 0)

    async def list_policies(self, *, after: str | None, limit: int) -> list[HostPolicyRow]:
        """Policies after `after` in pattern order."""
        async with connection(self._pool) as conn:
            return await q.HOST_POLICY_LIST.fetch(conn, after_pattern=after, limit=limit)

    async def gauges(self) -> HostGauges:
        async with connection(self._pool) as conn:
            row = await q.HOST_GAUGES.fetch_one(conn)
        assert row is not None  # an aggregate: one row, always
        return row

    async def paused_by_reason(self, now: dt.datetime | None = None) -> dict[str, int]:
        """Hosts paused now by the text of their pause reason before its first ':'."""
        async with connection(self._pool) as conn:
            rows = await q.HOST_PAUSED_BY_REASON.fetch(conn, now=now)
        return {row.reason: row.hosts for row in rows}
