"""Exit codes of ``crawlfleet`` and the one error type commands raise (see docs/cli.md)."""

from __future__ import annotations

EXIT_OK = 0
# The operation failed (the coordinator refused it, a job was not found) or the queue is unhealthy.
EXIT_FAILED = 1
# Bad arguments or input (argparse exits with 2 as well).
EXIT_USAGE = 2
# The jobs waited for ended, and some of them dead or cancelled.
EXIT_JOBS_FAILED = 3
EXIT_TIMEOUT = 4
# The coordinator cannot be reached, or refused our credentials.
EXIT_UNREACHABLE = 5
# Ctrl-C, as shells report SIGINT.
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure to report on stderr (prefixed ``crawlfleet: ``) before exiting with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        # The offending request field of an INVALID_ARGUMENT answer, e.g. "jobs[3].scrape.url".
        self.field = field


class UsageError(CliError):
    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)
