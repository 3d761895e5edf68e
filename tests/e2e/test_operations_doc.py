"""Every command example of docs/operations.md runs, against a live coordinator with a dead, a
queued and a succeeded job, and exits 0."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
from pathlib import Path

import pytest

from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator
from tests.e2e.test_buf_curl import buf_binary
from tests.helpers import lease_request, noop, noop_result, scrape

pytestmark = pytest.mark.e2e
DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
_CONSOLE_BLOCK = re.compile(r"```console\n(.*?)```", re.DOTALL)


def doc_commands() -> list[str]:
    commands = []
    for block in _CONSOLE_BLOCK.findall(DOC.read_text()):
        commands += [line.removeprefix("$ ") for line in block.splitlines() if line.startswith("$ ")]
    return commands


def test_the_guide_has_examples() -> None:
    commands = doc_commands()
    assert len(commands) >= 10 and any(c.startswith("buf curl") for c in commands)


async def seed(coord: RunningCoordinator) -> dict[str, str]:
    """A succeeded, a dead (http_5xx) and a queued job."""
    ids = [
        j.id
        for j in (
            await coord.queue.Enqueue(
                pb.EnqueueRequest(
                    jobs=[
                        noop(priority=9),
                        scrape("https://example.com/flaky", priority=8),
                        scrape("https://example.com/later"),
                    ]
                )
            )
        ).jobs
    ]
    done, dead = (await coord.queue.Lease(lease_request(max_jobs=2))).jobs
    await coord.queue.Complete(
        pb.CompleteRequest(jobs=[pb.CompletedJob(job_id=done.id, lease_token=done.lease_token, result=noop_result())])
    )
    await coord.queue.Fail(
        pb.FailRequest(
            job_id=dead.id,
            lease_token=dead.lease_token,
            error_type="http_5xx",
            error_message="HTTP 503",
            retryable=False,
        )
    )
    return {"COORDINATOR": coord.address, "DEAD_JOB": str(ids[1]), "QUEUED_JOB": str(ids[2])}


@pytest.mark.parametrize("command", doc_commands())
async def test_documented_command_runs(command: str, coord: RunningCoordinator, tmp_path: Path) -> None:
    values = await seed(coord)
    line = re.sub(r"\$([A-Z_]+)", lambda m: values[m.group(1)], command)
    argv = shlex.split(line)
    if argv[0] == "crawlfleet":
        argv = [sys.executable, "-m", "crawlfleet.cli", *argv[1:]]
    elif argv[0] == "buf":
        argv = [buf_binary(), *argv[1:]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLFLEET_")}
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, f"{line}\n{out.decode()}\n{err.decode()}"
