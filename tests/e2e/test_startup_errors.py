"""A coordinator that cannot start says why in one line and exits 2, without a traceback."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


async def test_a_taken_port_is_one_line_not_a_traceback(db_dsn: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        command = [sys.executable, "-m", "crawlfleet.coordinator", "serve", "--listen", listen]
        done = await asyncio.to_thread(
            subprocess.run, [*command, "--database-url", db_dsn], capture_output=True, text=True, timeout=90
        )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert f"cannot listen on {listen}: the port is taken" in done.stdout
    assert "Traceback" not in output
