"""Coordinator and worker processes on this machine, for ``crawlfleet demo``.

Each process runs in a session of its own: Ctrl-C at the terminal reaches only the CLI, which then
stops them in order with one SIGTERM each (a second signal would make a worker exit at once).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from crawlfleet.cli.errors import CliError
from crawlfleet.cli.settings import child_environment

LISTENING = re.compile(r"listening on (\S+):(\d+)")
METRICS = re.compile(r"metrics on (http://\S+)")
DASHBOARD = re.compile(r"dashboard on (https?://\S+)")
# Every process of the demo on a port of its own: several demos (or tests) can run side by side.
ANY_PORT = "127.0.0.1:0"
STARTUP_TIMEOUT = 120.0  # the first start initializes the embedded PostgreSQL
WORKER_STOP_TIMEOUT = 60.0  # the worker's shutdown grace (30 s) and its reports
COORDINATOR_STOP_TIMEOUT = 60.0
POLL = 0.1


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def last_problem(self) -> str | None:
        """The last WARNING or ERROR line of the log, if any."""
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return None
        return next((line for line in reversed(lines) if " WARNING " in line or " ERROR " in line), None)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class LocalFleet:
    """Starts processes logging into ``log_dir``; ``stop()`` ends them all and reports their exit codes."""

    log_dir: Path
    processes: list[Process] = field(default_factory=list)

    def start(self, name: str, module: str, *args: str) -> Process:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:  # the child keeps its own descriptor
            popen = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=child_environment(),
                start_new_session=True,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def coordinator(self, *, database_url: str | None, data_dir: Path | None) -> Process:
        args = ["serve", "--listen", ANY_PORT, "--metrics-listen", ANY_PORT]
        args += ["--database-url", database_url] if database_url else []
        args += ["--data-dir", str(data_dir)] if data_dir else []
        return self.start("coordinator", "crawlfleet.coordinator", *args)

    def worker(self, name: str, address: str, *, slots: int, allow_loopback: bool) -> Process:
        args = ["--coordinator", address, "--worker-id", name, "--slots", str(slots), "--kinds", "scrape"]
        args += ["--metrics-listen", ANY_PORT]
        return self.start(name, "crawlfleet.worker", *args, *(["--allow-loopback"] if allow_loopback else []))

    def dashboard(self, address: str) -> Process:
        # The demo's coordinator takes no tokens: neither does its dashboard (loopback only).
        return self.start(
            "dashboard", "crawlfleet.dashboard", "--coordinators", address, "--listen", ANY_PORT, "--anonymous"
        )

    def dashboard_url(self, dashboard: Process, timeout: float = STARTUP_TIMEOUT) -> str | None:
        """The dashboard's address from its log; None if it did not start (the demo goes on without)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and dashboard.popen.poll() is None:
            match = DASHBOARD.search(dashboard.log.read_text(errors="replace"))
            if match:
                return match.group(1)
            time.sleep(POLL)
        return None

    def address_of(self, coordinator: Process, timeout: float = STARTUP_TIMEOUT) -> str:
        """``host:port`` from the coordinator's ``listening on`` log line."""
        deadline = time.monotonic() + timeout
        while True:
            match = LISTENING.search(coordinator.log.read_text(errors="replace"))
            if match:
                return f"{match.group(1)}:{match.group(2)}"
            if coordinator.popen.poll() is not None:
                raise CliError(
                    f"the coordinator exited during start-up (status {coordinator.popen.returncode}); "
                    f"see {coordinator.log}:\n{coordinator.tail()}"
                )
            if time.monotonic() > deadline:
                raise CliError(f"the coordinator did not start within {timeout:.0f}s; see {coordinator.log}")
            time.sleep(POLL)

    def metrics_urls(self) -> dict[str, str]:
        """Each process's Prometheus endpoint, from its log."""
        found = {}
        for p in self.processes:
            match = METRICS.search(p.log.read_text(errors="replace"))
            if match:
                found[p.name] = match.group(1)
        return found

    def exited(self) -> list[Process]:
        return [p for p in self.processes if p.popen.poll() is not None]

    def stop(self) -> dict[str, int]:
        """SIGTERM to the workers, then to the coordinator; each one's exit status (killed: -9)."""
        workers = [p for p in self.processes if p.name != "coordinator"]
        coordinators = [p for p in self.processes if p.name == "coordinator"]
        codes = _terminate(workers, WORKER_STOP_TIMEOUT)
        codes.update(_terminate(coordinators, COORDINATOR_STOP_TIMEOUT))
        return codes


def _terminate(processes: list[Process], timeout: float) -> dict[str, int]:
    for p in processes:
        if p.popen.poll() is None:
            p.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    codes = {}
    for p in processes:
        try:
            codes[p.name] = p.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.popen.kill()
            codes[p.name] = p.popen.wait()
    return codes
