"""Child processes for benchmarks: start with logs to files, wait for a log line, stop by signal, CPU time.

Everything here is bounded: each wait takes a timeout, and `kill_all` is meant for a `finally`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_LINE_POLL_SECONDS = 0.02


class ChildError(RuntimeError):
    """A child process did not start, did not stop, or exited unexpectedly."""


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


# Coordinator flags for a bench's own site: no per-host politeness, so the workers' slots are the
# only bound on the work in flight, as CONCURRENT_REQUESTS is Scrapy's. A host limit equal to
# the slots would bind earlier: a lease counts against its host from the claim until its
# Complete commits, so a finished job awaiting its Complete holds a host slot its worker's free
# slot cannot use (on the 3,000-page scrape bench, 247 pages/s with a limit of 16 for 16 slots
# against 402 with one of 64).
UNPACED_HOST_FLAGS = ["--host-concurrency", "10000", "--host-delay-seconds", "0", "--no-obey-robots"]


def start_python(name: str, args: list[str], *, log_dir: Path, cwd: Path) -> Child:
    """Run `python <args>` with stdout and stderr in log_dir/<name>.log (a file never blocks the child)."""
    log_path = log_dir / f"{name}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    return Child(name, proc, log_path)


async def wait_for_line(child: Child, pattern: str, timeout: float) -> re.Match[str]:
    """The first match of pattern in the child's log; fails if the child exits or time runs out."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        match = regex.search(child.log_path.read_text(errors="replace"))
        if match:
            return match
        if child.proc.poll() is not None:
            raise ChildError(
                f"{child.name} exited {child.proc.returncode} before logging /{pattern}/:\n{child.log_tail()}"
            )
        if time.monotonic() > deadline:
            raise ChildError(f"{child.name} did not log /{pattern}/ within {timeout}s:\n{child.log_tail()}")
        await asyncio.sleep(_LINE_POLL_SECONDS)


async def stop(child: Child, timeout: float) -> int:
    """SIGTERM, then wait up to timeout for the exit status; SIGKILL and fail if it does not come."""
    if child.proc.poll() is None:
        child.proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.to_thread(child.proc.wait, timeout)
    except subprocess.TimeoutExpired:
        child.proc.kill()
        child.proc.wait()
        raise ChildError(f"{child.name} did not exit within {timeout}s of SIGTERM:\n{child.log_tail()}") from None


async def start_coordinator(
    dsn: str, flags: list[str], *, log_dir: Path, cwd: Path, timeout: float
) -> tuple[Child, str]:
    """A coordinator on a free loopback port against ``dsn``; returns it with its ``host:port``."""
    argv = ["-m", "crawlfleet.coordinator", "serve", "--listen", "127.0.0.1:0", "--database-url", dsn, *flags]
    coordinator = start_python("coordinator", argv, log_dir=log_dir, cwd=cwd)
    try:
        match = await wait_for_line(coordinator, r"crawlfleet-coordinator listening on (\S+:\d+)", timeout)
    except BaseException:
        kill_all([coordinator])
        raise
    return coordinator, match.group(1)


async def stop_all(children: list[Child], timeout: float) -> None:
    """SIGTERM each child in turn (workers before their coordinator) and require status 0."""
    for child in children:
        code = await stop(child, timeout)
        if code != 0:
            raise ChildError(f"{child.name} exited {code} after SIGTERM:\n{child.log_tail()}")


def kill_all(children: list[Child]) -> None:
    """SIGKILL every child still running (for error paths) and reap it."""
    for child in children:
        if child.proc.poll() is None:
            child.proc.kill()
    for child in children:
        child.proc.wait()


def check_running(children: list[Child]) -> None:
    """Fail loudly if any child has exited."""
    for child in children:
        if child.proc.poll() is not None:
            raise ChildError(f"{child.name} exited {child.proc.returncode}:\n{child.log_tail()}")


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """User plus system CPU time of a process so far (0 once it is gone); with reaped_children, plus
    that of its children that exited and were waited for (e.g. a browser's renderer processes)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # Fields after the parenthesised command name; utime, stime, cutime, cstime are fields 14 to 17.
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _CLOCK_TICKS


def descendants(pids: list[int]) -> list[tuple[int, str]]:
    """(pid, command name) of every live descendant of pids, from one pass over /proc."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append((int(entry.name), stat[stat.index("(") + 1 : stat.rindex(")")]))
    found: list[tuple[int, str]] = []
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def postgres_pids(postmaster: int | None) -> list[int]:
    """The postmaster and its children; without a postmaster pid, every `postgres` process on this host."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        command = stat[stat.index("(") + 1 : stat.rindex(")")]
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        if (postmaster is None and command == "postgres") or postmaster in (int(entry.name), parent):
            pids.append(int(entry.name))
    return pids


def host_busy_seconds() -> float:
    """CPU seconds all cores of this host spent not idle, from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


class CpuMeter:
    """CPU seconds spent by groups of processes between `start()` and `read()`.

    `postgres` is the server's processes alive at each reading: backends that exit in between are
    missed, which pooled connections make rare. `other` is the rest of the host (noise).

    groups may be a function, called at each reading, for groups whose processes come and go (pools,
    browsers); with reaped_children, a process also counts its children that exited in between.
    """

    def __init__(
        self,
        groups: dict[str, list[int]] | Callable[[], dict[str, list[int]]],
        *,
        postmaster: int | None,
        reaped_children: bool = False,
    ) -> None:
        self._groups = groups
        self._postmaster = postmaster
        self._reaped_children = reaped_children
        self._start: dict[str, dict[int, float]] = {}
        self._host_start = 0.0

    def _sample(self) -> dict[str, dict[int, float]]:
        named = self._groups() if callable(self._groups) else self._groups
        groups = {**named, "postgres": postgres_pids(self._postmaster)}
        return {
            name: {pid: cpu_seconds(pid, reaped_children=self._reaped_children) for pid in pids}
            for name, pids in groups.items()
        }

    def start(self) -> None:
        self._start = self._sample()
        self._host_start = host_busy_seconds()

    def read(self) -> dict[str, float]:
        """CPU seconds per group since `start()` (processes started meanwhile count from zero)."""
        now = self._sample()
        spent = {
            name: sum(t - self._start.get(name, {}).get(pid, 0.0) for pid, t in pids.items())
            for name, pids in now.items()
        }
        spent["other"] = host_busy_seconds() - self._host_start - sum(spent.values())
        return {name: round(seconds, 2) for name, seconds in spent.items()}


async def run_scrapy(
    argv: list[str], *, log_path: Path, out: Path, timeout: float, pages: int, verb: str
) -> tuple[dict[str, Any], float]:
    """Runs a Scrapy bench script (argv) to its end: its last stdout line as JSON, and the CPU
    seconds it took. Fails unless it exited 0 having done ``pages`` pages."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
        )
        try:
            stdout, _ = await asyncio.wait_for(proc.communicate(), timeout)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = stdout.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"scrapy exited {proc.returncode}; see {log_path} and {out / 'scrapy.log'}")
    result: dict[str, Any] = json.loads(lines[-1])
    if result["pages"] != pages:
        raise RuntimeError(f"scrapy {verb} {result['pages']} of {pages} pages; see {out / 'scrapy.log'}")
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    return result, cpu
