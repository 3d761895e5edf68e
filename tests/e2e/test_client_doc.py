"""Every Python example of docs/client.md runs, as a script of its own, against a live coordinator
whose jobs a stand-in worker finishes (URLs with "missing" in them die with HTTP 404)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from crawlfleet.v1 import job_queue_pb2 as pb
from crawlfleet.v1 import jobs_pb2
from tests.conftest import RunningCoordinator
from tests.helpers import lease_request, noop_result

pytestmark = pytest.mark.e2e
DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"
DOC_ADDRESS = "127.0.0.1:50051"
_PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def doc_examples() -> list[str]:
    return _PYTHON_BLOCK.findall(DOC.read_text())


def test_the_page_has_examples_of_both_clients() -> None:
    examples = doc_examples()
    assert len(examples) >= 8
    assert any("AsyncClient(" in e for e in examples) and any("except InvalidArgument" in e for e in examples)
    for example in examples:  # each reaches the coordinator the test starts
        assert DOC_ADDRESS in example or "from_env()" in example, example


async def test_the_examples_type_check_strictly(repo_root: Path, tmp_path: Path) -> None:
    """What a user's ``mypy --strict`` says of code like the examples (the package ships py.typed)."""
    for n, example in enumerate(doc_examples()):
        (tmp_path / f"example_{n}.py").write_text(example)
    env = {**os.environ, "MYPYPATH": f"{repo_root / 'src'}:{repo_root / 'protos'}"}
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--cache-dir", str(tmp_path / ".mypy")),
        ".",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == 0, out.decode()


def result_of(job: pb.LeasedJob) -> jobs_pb2.JobResult:
    if job.kind != "scrape":
        return noop_result()
    url = job.spec.scrape.url
    page = jobs_pb2.ScrapeResult(
        final_url=url,
        status_code=200,
        title=f"Page {url.rsplit('/', 1)[-1] or 'home'}",
        content_type="text/html",
        rendered_with=jobs_pb2.RENDER_MODE_HTTP,
        fields=[jobs_pb2.FieldValue(name=f.name, values=[f"{f.name} of {url}"]) for f in job.spec.scrape.fields],
    )
    return jobs_pb2.JobResult(scrape=page)


async def finish(coord: RunningCoordinator, job: pb.LeasedJob) -> None:
    if "missing" in job.spec.scrape.url:
        request = pb.FailRequest(
            job_id=job.id, lease_token=job.lease_token, error_type="http_4xx", error_message="HTTP 404"
        )
        await coord.queue.Fail(request)
        return
    done = pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=result_of(job))
    await coord.queue.Complete(pb.CompleteRequest(jobs=[done]))


@contextlib.asynccontextmanager
async def stand_in_worker(coord: RunningCoordinator) -> AsyncIterator[None]:
    """Leases every due job and finishes it at once, until the block ends."""

    async def work() -> None:
        while True:
            try:
                leased = await coord.queue.Lease(lease_request(worker_id="doc-worker", max_jobs=100, wait=1.0))
            except grpc.aio.AioRpcError as error:
                if error.code() is grpc.StatusCode.CANCELLED:
                    return
                raise
            for job in leased.jobs:
                await finish(coord, job)

    task = asyncio.create_task(work())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("example", doc_examples())
async def test_documented_example_runs(example: str, coord: RunningCoordinator, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(example.replace(DOC_ADDRESS, coord.address))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLFLEET_")}
    env["CRAWLFLEET_COORDINATOR"] = coord.address
    async with stand_in_worker(coord):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == 0, f"{example}\n{out.decode()}\n{err.decode()}"
    assert out.strip(), "each example prints what it found"
