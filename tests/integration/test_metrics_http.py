"""The /metrics endpoint on a real port: serving a registry, a taken address, stopping."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from crawlfleet.common.metrics_http import MetricsEndpoint


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("crawlfleet_test_things", "Things counted by the test", registry=registry).inc(3)
    return registry


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


async def test_serves_the_registry_until_stopped(registry: CollectorRegistry) -> None:
    endpoint = MetricsEndpoint.start("127.0.0.1:0", registry)
    assert endpoint is not None and endpoint.port > 0
    url = f"http://127.0.0.1:{endpoint.port}/metrics"
    async with httpx.AsyncClient() as client:
        response = await client.get(url, timeout=10.0)
        assert "crawlfleet_test_things_total 3.0" in response.text
        await endpoint.stop()
        await endpoint.stop()  # safe twice
        with pytest.raises(httpx.ConnectError):
            await client.get(url, timeout=10.0)


def test_off_serves_nothing(registry: CollectorRegistry) -> None:
    assert MetricsEndpoint.start("off", registry) is None


def test_a_taken_address_fails_unless_best_effort(
    registry: CollectorRegistry, taken_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    listen = f"127.0.0.1:{taken_port}"
    with pytest.raises(OSError, match="cannot serve metrics on"):
        MetricsEndpoint.start(listen, registry)
    with caplog.at_level(logging.WARNING):
        assert MetricsEndpoint.start(listen, registry, best_effort=True) is None
    assert f"{listen} is taken" in caplog.text


async def test_a_bare_port_binds_loopback_only(registry: CollectorRegistry) -> None:
    endpoint = MetricsEndpoint.start(":0", registry)
    assert endpoint is not None
    try:
        assert endpoint.host == "127.0.0.1"
    finally:
        await endpoint.stop()
