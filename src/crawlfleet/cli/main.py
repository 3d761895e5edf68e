"""``crawlfleet``: the operator's and producer's command line (see docs/cli.md).

Exit status: 0 ok, 1 the operation failed or the queue is unhealthy, 2 usage error, 3 jobs waited
for ended dead or cancelled, 4 timeout, 5 coordinator unreachable or credentials refused.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from crawlfleet.cli.client import describe_error
from crawlfleet.cli.commands import crawl, dead, demo, enqueue, hosts, jobs, queue, results, wait
from crawlfleet.cli.context import Context
from crawlfleet.cli.errors import EXIT_INTERRUPTED, EXIT_OK, CliError
from crawlfleet.cli.settings import add_global_options, settings_from
from crawlfleet.client import ClientError
from crawlfleet.common.logs import CLI_FORMAT, setup_logging

Command = Callable[[Context, argparse.Namespace], int]
EPILOG = """exit status: 0 ok, 1 operation failed or unhealthy, 2 usage error, 3 jobs ended dead or cancelled,
4 timeout, 5 coordinator unreachable or credentials refused.
examples:
  crawlfleet enqueue https://example.com/ --render auto
  crawlfleet enqueue - < urls.txt
  crawlfleet stats
  crawlfleet dead list --error-type http_5xx
  crawlfleet hosts list --paused
  crawlfleet wait --all --timeout 10m
  crawlfleet crawl start https://example.com/ --depth 2 --max-pages 500 --wait"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crawlfleet",
        description="Enqueue jobs, run crawls, watch the queue, steer how hosts are treated and replay failures "
        "on a crawlfleet coordinator.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_global_options(parser)
    # Global options may also follow the command: `crawlfleet stats --json`.
    repeated = argparse.ArgumentParser(add_help=False)
    add_global_options(repeated, repeated=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    before = set(commands.choices)
    for module in (enqueue, queue, jobs, dead, hosts, wait, crawl, results, demo):
        module.register(commands)
    for name, sub in commands.choices.items():
        if name not in before:
            _add_repeated(sub, repeated)
    return parser


def _add_repeated(parser: argparse.ArgumentParser, repeated: argparse.ArgumentParser) -> None:
    """The repeated global options on a command and on each of its subcommands."""
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        group = parser.add_argument_group("global options (also accepted before the command)")
        for action in repeated._actions:
            group._add_action(action)
        return
    for action in subcommands:
        for sub in action.choices.values():
            _add_repeated(sub, repeated)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Runs one command and returns its exit status (argparse exits with 2 on a usage error)."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    ctx = Context(
        settings=settings_from(ns, parser),
        stdin=stdin or sys.stdin,
        stdout=stdout or sys.stdout,
        stderr=stderr or sys.stderr,
    )
    # Warnings only (a token sent in clear), in the command's own voice.
    setup_logging("WARNING", stream=ctx.stderr, line_format=CLI_FORMAT)
    run: Command = ns.run
    try:
        try:
            return run(ctx, ns)
        except ClientError as error:
            raise describe_error(error, ctx.settings) from None
    except CliError as error:
        ctx.err(f"crawlfleet: {error.message}")
        return error.exit_code
    except KeyboardInterrupt:
        ctx.err("crawlfleet: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `crawlfleet export | head`: the reader has all it wants
        if ctx.stdout is sys.stdout:
            # Python would complain flushing stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
