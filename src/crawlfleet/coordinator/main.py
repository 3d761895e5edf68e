"""`crawlfleet-coordinator [serve|migrate|recount|hash-token]`: run the coordinator, only apply
migrations, recount the jobs into the kept counts (a repair), or print the SHA-256 of a token
(read from standard input) for a tokens file."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Sequence

from crawlfleet.common.logs import setup_logging
from crawlfleet.coordinator.security.auth import SecurityConfigError
from crawlfleet.coordinator.security.settings import hash_token_command
from crawlfleet.coordinator.server import Coordinator, ListenFailed
from crawlfleet.coordinator.settings import CoordinatorSettings
from crawlfleet.coordinator.storage import database
from crawlfleet.coordinator.storage.admin import AdminQueue
from crawlfleet.coordinator.storage.migrate import MigrationMismatch, migrate

log = logging.getLogger("crawlfleet.coordinator")


async def serve(settings: CoordinatorSettings) -> None:
    coordinator = Coordinator(settings)
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    try:
        await coordinator.start()
    except BaseException:
        await coordinator.stop(grace=0)
        raise
    # What start-up built (modules, descriptors, the server) lives as long as the process: out of
    # the collector's generations, full collections stop walking it again and again. Enqueue's
    # batches allocate enough to run them often (about a tenth of its CPU before).
    gc.freeze()
    await stop_requested.wait()
    log.info("stopping: draining in-flight calls (grace %.1fs)", settings.shutdown_grace_seconds)
    await coordinator.stop()
    log.info("stopped")


async def migrate_only(settings: CoordinatorSettings) -> None:
    dsn = await database.resolve_dsn(settings)
    pool = await database.create_pool(dsn, size=1)
    try:
        async with pool.acquire() as conn:
            applied = await migrate(conn)
        log.info("migrations applied: %s", applied or "none pending")
    finally:
        await pool.close()


async def recount(settings: CoordinatorSettings) -> None:
    dsn = await database.resolve_dsn(settings)
    pool = await database.create_pool(dsn, size=1)
    try:
        await AdminQueue(pool).rebuild_counts()
        log.info("job counts rebuilt from the jobs table")
    finally:
        await pool.close()


def main(argv: Sequence[str] | None = None) -> None:
    command, settings = CoordinatorSettings.from_args(argv)
    if command == "hash-token":
        try:
            hash_token_command()
        except (SecurityConfigError, EOFError, KeyboardInterrupt) as exc:
            sys.exit(f"crawlfleet-coordinator hash-token: {exc or 'no token given'}")
        return
    # Standard output, as ever: operators' process managers collect it.
    setup_logging(settings.log_level, stream=sys.stdout)
    try:
        commands = {"serve": serve, "migrate": migrate_only, "recount": recount}
        asyncio.run(commands[command](settings))
    except (SecurityConfigError, MigrationMismatch, ListenFailed) as exc:
        log.critical("%s", exc)
        sys.exit(2)


if __name__ == "__main__":
    main()
