"""Egress guard: scrapes must not reach loopback, private, link-local, CGNAT or metadata addresses.

The check runs on the address actually connected to: `GuardedNetworkBackend` resolves the host
itself, keeps only permitted addresses and connects to one of them, so a DNS answer that changes
between a check and the connection (rebinding) cannot slip through. Every HTTP request of the
worker (pages, each redirect hop, images, and every request of the browser, which is routed
through the same client) goes through it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import typing
from collections.abc import Iterable
from dataclasses import dataclass

import httpcore

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK_NETWORKS: tuple[IPNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Cloud metadata endpoints that are not covered by the private and link-local ranges.
_METADATA = frozenset({ipaddress.IPv6Address("fd00:ec2::254"), ipaddress.IPv4Address("100.100.100.200")})


class DestinationBlocked(Exception):
    """Every address of a destination is refused by the egress policy."""

    def __init__(self, host: str, addresses: Iterable[IPAddress]) -> None:
        shown = ", ".join(str(a) for a in addresses)
        super().__init__(f"destination {host} resolves to blocked address(es) {shown}")
        self.host = host


class ResolutionFailed(Exception):
    """The host name does not resolve (DNS failure)."""


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4, Teredo), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


@dataclass(frozen=True, kw_only=True)
class EgressPolicy:
    """Globally routable unicast addresses pass; so do addresses in `allowed` (the allowlist)."""

    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, *, allow_loopback: bool, allow: Iterable[str] = ()) -> EgressPolicy:
        networks = [ipaddress.ip_network(cidr, strict=False) for cidr in allow]
        return cls(allowed=tuple(networks) + (LOOPBACK_NETWORKS if allow_loopback else ()))

    def permits(self, ip: IPAddress) -> bool:
        if any(ip.version == net.version and ip in net for net in self.allowed):
            return True
        if isinstance(ip, ipaddress.IPv6Address):
            inner = embedded_ipv4(ip)
            if inner is not None:
                return self.permits(inner)
        if ip in _METADATA or ip.is_multicast:
            return False
        # is_global is False for loopback, private, link-local (169.254.169.254 metadata), CGNAT,
        # reserved, documentation and unspecified ranges.
        return ip.is_global

    async def permitted_addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses of `host` this policy permits; raises DestinationBlocked if none."""
        addresses = await resolve(host, port)
        permitted = [ip for ip in addresses if self.permits(ip)]
        if not permitted:
            raise DestinationBlocked(host, addresses)
        return permitted


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses of `host` (an IP literal resolves to itself); raises ResolutionFailed."""
    host = host.strip("[]")
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolutionFailed(f"cannot resolve {host}: {exc}") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        # Scoped IPv6 literals come back as "fe80::1%eth0".
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise ResolutionFailed(f"cannot resolve {host}: no addresses")
    return addresses


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the policy permits.

    TLS still verifies the certificate against the host name: httpcore starts TLS on the stream
    returned here with the original server name.
    """

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        last_error: Exception | None = None
        for ip in await self._policy.permitted_addresses(host, port):
            try:
                return await self._inner.connect_tcp(
                    str(ip), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationBlocked(path, [])

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
