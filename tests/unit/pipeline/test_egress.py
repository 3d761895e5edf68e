from __future__ import annotations

import ipaddress
import socket

import pytest

from crawlfleet.worker.pipeline.egress import DestinationBlocked, EgressPolicy, IPAddress, socket_readable


def is_blocked_address(ip: IPAddress, *, allow_loopback: bool = False) -> bool:
    return not EgressPolicy.from_settings(allow_loopback=allow_loopback).permits(ip)


BLOCKED = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # CGNAT
    "100.100.100.200",  # Alibaba metadata
    "0.0.0.0",
    "224.0.0.1",
    "255.255.255.255",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",  # AWS IPv6 metadata
    "::ffff:10.0.0.1",  # IPv4-mapped private
    "::ffff:127.0.0.1",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "ff02::1",
]
ALLOWED = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", BLOCKED)
def test_blocked(address: str) -> None:
    assert is_blocked_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_allowed(address: str) -> None:
    assert not is_blocked_address(ipaddress.ip_address(address))


def test_allow_loopback_allows_only_loopback() -> None:
    assert not is_blocked_address(ipaddress.ip_address("127.0.0.1"), allow_loopback=True)
    assert not is_blocked_address(ipaddress.ip_address("::1"), allow_loopback=True)
    assert not is_blocked_address(ipaddress.ip_address("::ffff:127.0.0.1"), allow_loopback=True)
    assert is_blocked_address(ipaddress.ip_address("10.0.0.1"), allow_loopback=True)
    assert is_blocked_address(ipaddress.ip_address("169.254.169.254"), allow_loopback=True)


async def test_ip_literals_need_no_dns() -> None:
    policy = EgressPolicy.from_settings(allow_loopback=True)
    assert [str(a) for a in await policy.permitted_addresses("8.8.8.8", 80)] == ["8.8.8.8"]
    assert [str(a) for a in await policy.permitted_addresses("[::1]", 80)] == ["::1"]
    with pytest.raises(DestinationBlocked):
        await policy.permitted_addresses("169.254.169.254", 80)


def test_allowlist_admits_named_networks_only() -> None:
    policy = EgressPolicy.from_settings(allow_loopback=False, allow=["10.231.0.0/30", "fd12::/64"])
    assert policy.permits(ipaddress.ip_address("10.231.0.1"))
    assert policy.permits(ipaddress.ip_address("fd12::5"))
    assert not policy.permits(ipaddress.ip_address("10.231.0.9"))
    assert not policy.permits(ipaddress.ip_address("127.0.0.1"))


def test_a_socket_is_readable_once_data_or_the_end_of_the_stream_waits() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        assert not socket_readable(ours)  # idle: the connection may be reused
        theirs.sendall(b"stray")
        assert socket_readable(ours)
        ours.recv(16)
        assert not socket_readable(ours)
        theirs.close()  # the server closed it while idle
        assert socket_readable(ours)
    assert socket_readable(ours)  # closed on our side: gone
    assert socket_readable(None)
