"""A network namespace for the fetching side of egress tests.

The namespace has loopback and one veth link to the host (a /30 of its own); it has no default
route, so even a broken egress guard cannot send a packet to 169.254.169.254, 10.0.0.1 or any
other address: those are unreachable from inside. Host names can be pinned in the namespace's
own /etc/hosts (`ip netns exec` mounts /etc/netns/NAME/hosts over it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def available() -> str | None:
    """None if namespaces can be made here, else why not."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    return None


@dataclass(frozen=True)
class Namespace:
    name: str
    host_interface: str
    host_address: str  # the host's end of the link, reachable from inside
    inner_address: str

    @classmethod
    def create(cls, index: int, hosts: dict[str, str]) -> Namespace:
        """Namespace `cf<pid>-<index>` linked to the host over a /30 of 10.231.0.0/16 of its own."""
        name = f"cf{os.getpid()}-{index}"
        tag = f"{os.getpid() % 100000}{index}"
        host_if, inner_if = f"cfh{tag}", f"cfn{tag}"
        # A subnet per run and index: a namespace some earlier run leaked cannot shadow this one.
        block = (os.getpid() * 8 + index) % (256 * 64)
        subnet = f"10.231.{block // 64}.{block % 64 * 4}"
        base = subnet.rsplit(".", 1)
        namespace = cls(name, host_if, f"{base[0]}.{int(base[1]) + 1}", f"{base[0]}.{int(base[1]) + 2}")
        hosts_file = Path("/etc/netns") / name / "hosts"
        hosts_file.parent.mkdir(parents=True, exist_ok=True)
        hosts_file.write_text("".join(f"{address} {host}\n" for host, address in hosts.items()))
        try:
            _ip("netns", "add", name)
            _ip("link", "add", host_if, "type", "veth", "peer", "name", inner_if)
            _ip("link", "set", inner_if, "netns", name)
            _ip("addr", "add", f"{namespace.host_address}/30", "dev", host_if)
            _ip("link", "set", host_if, "up")
            _ip("netns", "exec", name, "ip", "addr", "add", f"{namespace.inner_address}/30", "dev", inner_if)
            _ip("netns", "exec", name, "ip", "link", "set", inner_if, "up")
            _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        except subprocess.CalledProcessError as exc:
            namespace.delete()
            raise RuntimeError(f"cannot set up namespace {name}: {exc.stderr}") from exc
        return namespace

    @property
    def inner_interface(self) -> str:
        return "cfn" + self.host_interface.removeprefix("cfh")

    def set_link(self, *, up: bool) -> None:
        """The namespace's end of the link down (a partition: nothing inside reaches the host, and
        the host's own address stays reachable from the host) or up again."""
        _ip("netns", "exec", self.name, "ip", "link", "set", self.inner_interface, "up" if up else "down")

    def command(self, *args: str) -> list[str]:
        """`args` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *args]

    def delete(self) -> None:
        """Kill what still runs inside (a browser's helpers would keep the namespace alive),
        then remove the namespace and both ends of the link."""
        pids = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)
        subprocess.run(["ip", "link", "delete", self.host_interface], capture_output=True)
        shutil.rmtree(Path("/etc/netns") / self.name, ignore_errors=True)
