"""A real gRPC client that knows no proto files: `buf curl` through server reflection only."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningCoordinator

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def buf_binary() -> str:
    found = ROOT / ".tools" / "node_modules" / ".bin" / "buf"
    if found.exists():
        return str(found)
    on_path = shutil.which("buf")
    if on_path is None:
        pytest.fail("buf is not installed: scripts/test.sh installs it into .tools (npm @bufbuild/buf)")
    return on_path


async def buf_curl(address: str, method: str, body: dict[str, Any] | None = None) -> Any:
    args = [buf_binary(), "curl", "--protocol", "grpc", "--http2-prior-knowledge"]
    if body is not None:
        args += ["-d", json.dumps(body)]
    process = await asyncio.create_subprocess_exec(
        *args, f"http://{address}/{method}", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    return json.loads(out)


async def test_enqueue_stats_and_get_job_through_reflection(coord: RunningCoordinator) -> None:
    listing = await asyncio.create_subprocess_exec(
        buf_binary(),
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "--list-methods",
        f"http://{coord.address}",
        stdout=asyncio.subprocess.PIPE,
    )
    methods = (await asyncio.wait_for(listing.communicate(), timeout=60))[0].decode().split()
    assert "crawlfleet.v1.JobQueue/Enqueue" in methods and "crawlfleet.v1.Admin/GetQueueHealth" in methods

    enqueued = await buf_curl(
        coord.address,
        "crawlfleet.v1.JobQueue/Enqueue",
        {"jobs": [{"scrape": {"url": "https://example.com/page", "render": "RENDER_MODE_AUTO"}, "priority": 5}]},
    )
    job_id = enqueued["jobs"][0]["id"]
    stats = await buf_curl(coord.address, "crawlfleet.v1.Admin/GetQueueStats")
    queued = [s for s in stats["states"] if s["state"] == "JOB_STATE_QUEUED"]
    assert queued[0]["count"] == "1"  # int64 is a string in JSON
    job = (await buf_curl(coord.address, "crawlfleet.v1.Admin/GetJob", {"jobId": job_id}))["job"]
    assert job["state"] == "JOB_STATE_QUEUED"
    assert job["targetUrl"] == "https://example.com/page"
    assert job["spec"]["scrape"]["render"] == "RENDER_MODE_AUTO"
    health = await buf_curl(coord.address, "grpc.health.v1.Health/Check")
    assert health["status"] == "SERVING"
