"""Real coordinator and worker processes for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_PORT_LINE = re.compile(rb"listening on [\d.]+:(\d+)")


# Tests of other things than politeness lease as fast as the queue allows; tests of politeness
# pass their own flags after these.
UNTHROTTLED_FLAGS = ("--host-concurrency", "10000", "--host-delay-seconds", "0", "--no-obey-robots")


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not exit within {timeout}s:\n{self.output()[-3000:]}")
            await asyncio.sleep(0.05)
        return self.proc.returncode


@dataclass
class Fleet:
    """Starts processes into a log directory and kills whatever is left at the end."""

    log_dir: Path
    processes: list[Process] = field(default_factory=list)

    def _start(self, name: str, args: list[str], prefix: Sequence[str] = ()) -> Process:
        log = self.log_dir / f"{name}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with log.open("wb") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [*prefix, sys.executable, "-m", *args], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env
            )
        process = Process(name, proc, log)
        self.processes.append(process)
        return process

    async def coordinator(self, name: str, dsn: str, *extra: str, port: int = 0, host: str = "127.0.0.1") -> Process:
        process = self._start(
            name,
            [
                "crawlfleet.coordinator",
                "serve",
                "--listen",
                f"{host}:{port}",
                "--database-url",
                dsn,
                "--reap-interval-seconds",
                "0.2",
                "--shutdown-grace-seconds",
                "3",
                *UNTHROTTLED_FLAGS,
                *extra,
            ],
        )
        deadline = time.monotonic() + 60
        while process.port is None:
            match = _PORT_LINE.search(process.log.read_bytes())
            if match:
                process.port = int(match.group(1))
            elif process.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{name} did not start:\n{process.output()[-3000:]}")
            else:
                await asyncio.sleep(0.05)
        return process

    def worker(
        self,
        name: str,
        coordinator_port: int,
        *extra: str,
        coordinator_host: str = "127.0.0.1",
        coordinator: str | None = None,
        prefix: Sequence[str] = (),
        allow_loopback: bool = True,
    ) -> Process:
        """A worker process; `prefix` runs it inside something (a network namespace). `coordinator`,
        a whole gRPC target, replaces host and port (e.g. `ipv4:a:1,b:2` to fail over between two)."""
        target = coordinator or f"{coordinator_host}:{coordinator_port}"
        args = ["crawlfleet.worker", "--coordinator", target, "--worker-id", name]
        args += ["--lease-wait", "2", *(["--allow-loopback"] if allow_loopback else []), *extra]
        return self._start(name, args, prefix)

    def kill_all(self) -> None:
        for process in self.processes:
            if process.proc.poll() is None:
                process.proc.kill()
                process.proc.wait(timeout=10)


def free_port() -> int:
    """A port free right now, for a coordinator that must come back on the same address."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
