"""Egress guard: scrapes must not reach loopback, private, link-local, CGNAT or metadata addresses.

This checks the addresses a host resolves to before each request (and each redirect hop). The HTTP
client resolves again when it connects, so a DNS answer that changes in between (rebinding) is not
caught yet; checking the address actually connected to is a later issue (a custom transport).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from worker.errors import JobError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Cloud metadata endpoints that are not covered by the private and link-local ranges.
_METADATA = frozenset({ipaddress.IPv6Address("fd00:ec2::254"), ipaddress.IPv4Address("100.100.100.200")})


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


def is_blocked_address(ip: IPAddress, *, allow_loopback: bool = False) -> bool:
    """Whether a fetch must not connect to ``ip``. Only globally routable unicast passes, plus
    loopback when ``allow_loopback`` (tests and the demo)."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            return is_blocked_address(inner, allow_loopback=allow_loopback)
    if ip.is_loopback:
        return not allow_loopback
    if ip in _METADATA or ip.is_multicast:
        return True
    # is_global is False for private, link-local (169.254.169.254 metadata), CGNAT, reserved,
    # documentation and unspecified ranges.
    return not ip.is_global


def blocked(message: str) -> JobError:
    """The error of a refused destination: never retried, another attempt would be refused too."""
    return JobError(message, error_type="blocked_destination", retryable=False)


async def check_host(host: str, port: int, *, allow_loopback: bool) -> None:
    """Raises ``JobError`` unless every address ``host`` resolves to may be fetched.

    All addresses are checked because the client may connect to any of them.
    """
    host = host.strip("[]")
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = await resolve(host, port)
    for ip in addresses:
        if is_blocked_address(ip, allow_loopback=allow_loopback):
            raise blocked(f"destination {host} resolves to blocked address {ip}")


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses of ``host``; a failed lookup is a retryable ``connect_error``."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise JobError(f"cannot resolve {host}: {exc}", error_type="connect_error", retryable=True) from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        # Scoped IPv6 literals come back as "fe80::1%eth0".
        addresses.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
    if not addresses:
        raise JobError(f"cannot resolve {host}: no addresses", error_type="connect_error", retryable=True)
    return addresses
