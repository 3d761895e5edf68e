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
import select
import socket
import ssl
import typing
from collections.abc import Iterable
from dataclasses import dataclass

import anyio
import anyio.abc
import anyio.streams.tls
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


class DeadlineBoundStream(httpcore.AsyncNetworkStream):
    """A connection's byte stream whose reads and writes set no timeout of their own.

    httpcore's stream opens a cancel scope around every read and write to apply a request's read
    and write timeouts: several per response, a measurable share of a worker's CPU per page. Every
    request of the worker runs under one deadline for the whole fetch, redirects and body included
    (`GuardedFetcher`: "fetching <url> took longer than Ns"), which bounds a stalled read as well.
    """

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream
        # Looked up once: the connection pool asks whether an idle connection is readable (the
        # server closed it) each time it hands one out.
        self._socket: socket.socket | None = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return await self._stream.receive(max_bytes)
        except anyio.EndOfStream:
            return b""
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            await self._stream.send(buffer)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):  # once per connection: the handshake's own bound
                tls = await anyio.streams.tls.TLSStream.wrap(
                    self._stream,
                    ssl_context=ssl_context,
                    hostname=server_hostname,
                    standard_compatible=False,
                    server_side=False,
                )
        except TimeoutError as exc:
            await self.aclose()
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except (anyio.BrokenResourceError, anyio.EndOfStream, ssl.SSLError) as exc:
            await self.aclose()
            raise httpcore.ConnectError(str(exc)) from exc
        return DeadlineBoundStream(tls)

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":
            return socket_readable(self._socket)
        if info == "socket":
            return self._socket
        if info == "ssl_object":
            return self._stream.extra(anyio.streams.tls.TLSAttribute.ssl_object, None)
        if info == "client_addr":
            return self._stream.extra(anyio.abc.SocketAttribute.local_address, None)
        if info == "server_addr":
            return self._stream.extra(anyio.abc.SocketAttribute.remote_address, None)
        return None


def socket_readable(sock: socket.socket | None) -> bool:
    """Whether a read would return at once: data waiting, or the end of the stream. httpcore asks
    before it reuses an idle connection, and drops one the server has closed (or sent stray bytes
    on) instead of sending a request into it. A socket that is gone counts as readable (closed)."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the policy permits.

    TLS still verifies the certificate against the host name: httpcore starts TLS on the stream
    returned here with the original server name.
    """

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy

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
                return await _connect(str(ip), port, timeout, local_address, socket_options or ())
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
        await anyio.sleep(seconds)


async def _connect(
    ip: str,
    port: int,
    timeout: float | None,
    local_address: str | None,
    socket_options: typing.Iterable[httpcore.SOCKET_OPTION],
) -> DeadlineBoundStream:
    """A TCP connection to ip (as httpcore's anyio backend makes it), its errors httpcore's."""
    try:
        with anyio.fail_after(timeout):
            stream = await anyio.connect_tcp(remote_host=ip, remote_port=port, local_host=local_address)
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(str(exc)) from exc
    except (OSError, anyio.BrokenResourceError) as exc:
        raise httpcore.ConnectError(str(exc)) from exc
    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    for option in socket_options:
        raw.setsockopt(*option)
    return DeadlineBoundStream(stream)
