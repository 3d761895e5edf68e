"""A bound on the bytes of large requests the coordinator handles at once.

A request costs several times its wire size while it is handled (the parsed message, the rows and
JSON made from it, the driver's buffers): eight concurrent 30 MB Completes once took a coordinator
from 0.2 to 1.8 GB, and the allocator kept most of it. The interceptor takes each unary call's
request as bytes, charges its size to a budget before parsing it, and gives it back when the call
ends. A request that does not fit is refused at once with RESOURCE_EXHAUSTED (reason
RESOURCE_EXHAUSTED, limit ``request_bytes_in_flight``) and a RetryInfo hint, rather than queued:
the caller (a worker's Complete retries with backoff) knows best whether to wait, and a queue would
hold the bytes it is meant to keep out. Small requests (Lease, Heartbeat, most Enqueues) are never
charged, so a burst of large results cannot starve the calls that keep leases alive.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc

from crawlfleet.coordinator.api.requests import Behavior, Deserializer, RawUnaryInterceptor, parse_request
from crawlfleet.coordinator.api.status import to_status
from crawlfleet.coordinator.errors import ResourceExhausted

log = logging.getLogger(__name__)

# Requests below this size are not charged: they cost little and must not wait behind big ones.
SMALL_REQUEST_BYTES = 64 * 1024
# What a refused caller is told to wait before trying again.
RETRY_AFTER_SECONDS = 1.0
BUDGET_LIMIT = "request_bytes_in_flight"


class RequestBudget:
    """Bytes of large requests in flight, against a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    def try_take(self, size: int) -> bool:
        """Charge ``size`` bytes if they fit; False (and nothing charged) if not."""
        if self.in_use + size > self.limit:
            return False
        self.in_use += size
        return True

    def give_back(self, size: int) -> None:
        self.in_use -= size


class RequestBytesInterceptor(RawUnaryInterceptor):
    """Charges each large unary request to a ``RequestBudget`` before it is parsed.

    Put it last among the interceptors, so that calls refused by authentication never charge it.
    """

    def __init__(self, budget: RequestBudget, on_refused: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.budget = budget
        self._on_refused = on_refused

    def wrap(self, method: str, behavior: Behavior, deserialize: Deserializer | None) -> Behavior:
        if deserialize is None:
            return behavior  # an outer layer already takes the bytes raw
        budget = self.budget

        async def charged(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            size = len(raw) if len(raw) >= SMALL_REQUEST_BYTES else 0
            if size and not budget.try_take(size):
                if self._on_refused is not None:
                    self._on_refused()
                error = ResourceExhausted(
                    BUDGET_LIMIT,
                    f"the coordinator is handling {budget.in_use} bytes of large requests (limit "
                    f"{budget.limit}); retry this {size}-byte request in a moment",
                    retry_after=RETRY_AFTER_SECONDS,
                )
                await context.abort_with_status(to_status(error))
            try:
                return await behavior(await parse_request(method, deserialize, raw, context), context)
            finally:
                if size:
                    budget.give_back(size)

        return charged
