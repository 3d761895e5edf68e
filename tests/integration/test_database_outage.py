"""Losing the database: health turns NOT_SERVING, calls fail UNAVAILABLE, and both recover."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import StartCoordinator
from tests.dbproxy import DatabaseProxy
from tests.helpers import error_info, eventually, noop


@pytest.fixture
async def proxy(db_dsn: str) -> AsyncIterator[DatabaseProxy]:
    proxy = DatabaseProxy(db_dsn)
    await proxy.start()
    yield proxy
    await proxy.cut()


async def test_health_and_errors_follow_the_database(start_coordinator: StartCoordinator, proxy: DatabaseProxy) -> None:
    coord = await start_coordinator(database_url=proxy.dsn)
    health = health_pb2_grpc.HealthStub(coord.channel)

    async def status_is(expected: int) -> bool:
        answer = await health.Check(health_pb2.HealthCheckRequest(service="crawlfleet.v1.JobQueue"))
        return bool(answer.status == expected)

    await eventually(lambda: status_is(health_pb2.HealthCheckResponse.SERVING), what="SERVING")
    await proxy.cut()
    await eventually(lambda: status_is(health_pb2.HealthCheckResponse.NOT_SERVING), what="NOT_SERVING")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[noop()]))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(caught.value).reason == "DATABASE_UNAVAILABLE"

    await proxy.start()
    await eventually(lambda: status_is(health_pb2.HealthCheckResponse.SERVING), what="SERVING again")

    async def enqueue_works() -> bool:
        try:
            await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[noop()]))
        except grpc.aio.AioRpcError:
            return False
        return True

    await eventually(enqueue_works, what="Enqueue to work again")
