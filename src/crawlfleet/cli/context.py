"""What a command runs with: the settings, the standard streams, a client, and a progress line."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TextIO

from crawlfleet.cli.client import open_client
from crawlfleet.cli.errors import UsageError
from crawlfleet.cli.render import dumps, escape_lines, rate
from crawlfleet.cli.settings import CliSettings
from crawlfleet.client import Client

BAR_WIDTH = 30
REDRAW_INTERVAL = 0.1


@dataclass
class Context:
    settings: CliSettings
    stdin: TextIO
    stdout: TextIO
    stderr: TextIO

    def client(self) -> Client:
        """A client of the coordinator; its ``ClientError``s reach ``main``, which words them."""
        return open_client(self.settings)

    def out(self, text: str = "") -> None:
        """Prints a block of output; control characters in it are escaped (untrusted strings reach it)."""
        print(escape_lines(text), file=self.stdout, flush=True)

    def err(self, text: str) -> None:
        print(escape_lines(text), file=self.stderr, flush=True)

    def json(self, value: object) -> None:
        self.out(dumps(value))

    def interactive(self) -> bool:
        """Whether stderr is a terminal someone watches (progress bars, prompts)."""
        return _isatty(self.stderr)

    def confirm(self, question: str, *, yes: bool) -> None:
        """Go on if ``--yes`` was given or a person at the terminal says so; refuse otherwise."""
        if yes:
            return
        if not (_isatty(self.stdin) and self.interactive()):
            raise UsageError(f"{question} Refusing without --yes (not asked: no terminal).")
        self.stderr.write(f"{question} [y/N] ")
        self.stderr.flush()
        if self.stdin.readline().strip().lower() not in ("y", "yes"):
            raise UsageError("not confirmed; nothing done")

    def progress(self, label: str) -> Progress:
        return Progress(self.stderr, label, enabled=self.interactive())


@dataclass
class Progress:
    """One redrawn line on a terminal: ``label [#####.....] done/total rate extra``; silent elsewhere."""

    stream: TextIO
    label: str
    enabled: bool
    started: float = field(default_factory=time.monotonic)
    _drawn: float = 0.0
    _width: int = 0

    def update(
        self, done: int, total: int | None, extra: str = "", *, force: bool = False, speed: str | None = None
    ) -> None:
        """Redraws the line (at most every REDRAW_INTERVAL unless ``force``); ``speed`` replaces the
        rate counted since the line started (a rate the coordinator measures, say)."""
        now = time.monotonic()
        if not self.enabled or (not force and now - self._drawn < REDRAW_INTERVAL):
            return
        self._drawn = now
        parts = [self.label]
        if total:
            filled = min(BAR_WIDTH, BAR_WIDTH * done // total)
            parts.append(f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}")
        else:
            parts.append(str(done))
        parts.append(speed if speed is not None else rate(done, now - self.started))
        if extra:
            parts.append(extra)
        line = " ".join(parts)
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def finish(self) -> None:
        """Clears the line, so what follows starts at column 0."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
