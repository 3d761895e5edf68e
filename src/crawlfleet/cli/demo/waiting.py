"""What the demo does while it waits for work: a progress line (redrawn on a terminal, a plain
line every few seconds elsewhere), a word about what the processes complain about when nothing has
moved for a while, and a clear error when one of them exited."""

from __future__ import annotations

import time

from crawlfleet.cli.context import Context
from crawlfleet.cli.errors import CliError
from crawlfleet.cli.fleet import LocalFleet

POLL = 0.25
PLAIN_PROGRESS_INTERVAL = 2.0  # seconds between progress lines when stderr is not a terminal
STALL_WARNING = 30.0  # seconds without any change before the demo shows what the processes complain about


class Waiting:
    """One wait of the demo: ``show`` after each look, ``finish`` at the end."""

    def __init__(self, ctx: Context, fleet: LocalFleet, label: str) -> None:
        self._ctx = ctx
        self._fleet = fleet
        self._label = label
        self._progress = ctx.progress(label)
        self._last_line, self._last_printed = "", 0.0
        self._changed, self._seen, self._stalled = time.monotonic(), "", False

    def show(self, done: int, total: int | None, line: str, *, ended: bool) -> None:
        """Draws the progress; raises CliError when a process of the demo has exited."""
        self._progress.update(done, total, line, force=True)
        now = time.monotonic()
        if (
            not self._progress.enabled
            and line != self._last_line
            and (ended or now - self._last_printed >= PLAIN_PROGRESS_INTERVAL)
        ):
            self._ctx.err(f"progress: {line}")
            self._last_line, self._last_printed = line, now
        if line != self._seen:
            self._changed, self._seen = now, line
        elif not self._stalled and now - self._changed > STALL_WARNING:
            self._stalled = True
            self._progress.finish()
            self._ctx.err(f"no progress for {STALL_WARNING:.0f}s; what the processes last complained about:")
            for process in self._fleet.processes:
                self._ctx.err(f"  {process.name}: {process.last_problem() or '(nothing)'}")
        if exited := self._fleet.exited():
            self._progress.finish()
            gone = exited[0]
            raise CliError(f"{gone.name} exited with status {gone.popen.returncode}; see {gone.log}:\n{gone.tail()}")

    def finish(self) -> None:
        self._progress.finish()

    @staticmethod
    def pause() -> None:
        time.sleep(POLL)
