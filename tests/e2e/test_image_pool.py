"""A worker killed with SIGKILL takes its image processes with it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.helpers import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(sys.platform != "linux", reason="reads process states from /proc")]

# A stand-in for a worker: starts the image pool on one image, writes the pool's pids to a file
# (not a pipe: the pool processes inherit the standard streams), waits.
HOLDER = """
import asyncio, multiprocessing, os, sys
from crawlfleet.worker.pipeline.images import ImageOptions, ImageProcessor
from tests.site import PHOTO_PNG

async def main() -> None:
    processor = ImageProcessor(ImageOptions(), workers=2)
    await processor.process(PHOTO_PNG)
    pids = " ".join(str(p.pid) for p in multiprocessing.active_children())
    with open(sys.argv[1] + ".tmp", "w") as out:
        out.write(pids)
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    await asyncio.Event().wait()  # until the test kills us

asyncio.run(main())
"""


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan waits for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.timeout(60)
async def test_image_processes_leave_when_the_worker_is_killed(repo_root: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "pool-pids"
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, str(pid_file), cwd=repo_root, stdout=asyncio.subprocess.DEVNULL
    )
    try:

        async def pool_started() -> bool:
            return pid_file.exists()

        await eventually(pool_started, timeout=30, interval=0.1, what="the image pool to start")
        children = [int(pid) for pid in pid_file.read_text().split()]
        assert children, "the pool started no process"
        holder.kill()
        await holder.wait()

        async def all_gone() -> bool:
            return not any(running(pid) for pid in children)

        await eventually(all_gone, timeout=20, interval=0.1, what="the image processes to leave")
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
