"""The wheel is what fleet hosts install: build it, install it into a fresh virtualenv outside the
checkout, and from there migrate, serve, work and finish a scrape job on an embedded PostgreSQL.

The fresh environment gets the wheel alone (``--no-deps``); the third-party packages come from this
test run's environment through a plain path entry, so the test needs no network and no download
time, while every crawlfleet module, SQL file and entry point is the wheel's own.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import eventually
from tests.site import LocalSite, html, page

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = re.compile(r"dashboard on (http://\S+)")
LISTENING = re.compile(r"listening on [\d.]+:(\d+)")


def _copy_source(destination: Path) -> Path:
    """What the wheel is built from, copied so the build leaves nothing behind in the checkout."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in ("src", "protos"):
        shutil.copytree(ROOT / folder, destination / folder, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, destination / name)
    return destination


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = _copy_source(tmp_path_factory.mktemp("wheel-source"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(source)],
        check=True,
        timeout=240,
    )
    (built,) = out.glob("crawlfleet-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_env(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with the wheel installed; its bin/ holds the three programs."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index", wheel],
        check=True,
        timeout=120,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # A plain path line: this run's site-packages is searched for dependencies, but its .pth files
    # (among them the editable install of the checkout) are not processed.
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def test_the_wheel_holds_one_namespace_and_its_sql(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")}
    assert top_level == {"crawlfleet"}
    for expected in (
        "crawlfleet/sql/migrations/0001_jobs.sql",
        "crawlfleet/sql/queries/jobs.sql",
        "crawlfleet/v1/job_queue.proto",
        "crawlfleet/v1/job_queue_pb2.pyi",
        "crawlfleet/coordinator/storage/queue.py",
        "crawlfleet/worker/handlers/scrape.py",
        "crawlfleet/cli/main.py",
        "crawlfleet/client/sync_client.py",
        "crawlfleet/client/py.typed",  # users' type checkers read the library's annotations
        "crawlfleet/dashboard/templates/overview.html",
        "crawlfleet/dashboard/static/dashboard.js",
        "crawlfleet/dashboard/static/vendor/uplot/uPlot.iife.min.js",
        "crawlfleet/dashboard/static/vendor/uplot/LICENSE",
    ):
        assert expected in names, expected
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    for program in ("crawlfleet =", "crawlfleet-coordinator =", "crawlfleet-worker =", "crawlfleet-dashboard ="):
        assert program in scripts


@pytest.fixture
def site() -> Iterator[LocalSite]:
    site = LocalSite()
    site.routes["/product/1"] = page(html("Wheel teapot", "<h1>Wheel teapot</h1><p>Installed from a wheel.</p>"))
    site.start()
    yield site
    site.stop()


def _environment() -> dict[str, str]:
    """No trace of the checkout: no PYTHONPATH, no CRAWLFLEET_* settings of the caller."""
    keep = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("CRAWLFLEET_")}
    return {**keep, "PYTHONUNBUFFERED": "1"}


async def test_installed_wheel_migrates_serves_and_finishes_a_job(
    fresh_env: Path, site: LocalSite, tmp_path: Path
) -> None:
    bin_dir = fresh_env / "bin"
    env = _environment()
    data_dir = str(tmp_path / "pgdata")

    async def run(*argv: str) -> subprocess.CompletedProcess[str]:
        command = [str(bin_dir / argv[0]), *argv[1:]]
        return await asyncio.to_thread(
            subprocess.run, command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )

    async def start(name: str, *argv: str) -> asyncio.subprocess.Process:
        log = await asyncio.to_thread((tmp_path / f"{name}.log").open, "wb")
        with log:  # the child keeps its own descriptor
            return await asyncio.create_subprocess_exec(
                str(bin_dir / name), *argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    async def log_of(name: str) -> str:
        return await asyncio.to_thread((tmp_path / f"{name}.log").read_text)

    # The modules come from the fresh environment, not from the checkout.
    where = await run("python", "-c", "import crawlfleet.sql; print(crawlfleet.sql.__file__)")
    assert where.returncode == 0, where.stderr
    assert where.stdout.startswith(str(fresh_env)), where.stdout

    migrated = await run("crawlfleet-coordinator", "migrate", "--data-dir", data_dir)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "migrations applied" in migrated.stdout

    coordinator = await start("crawlfleet-coordinator", "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir)
    processes = [coordinator]
    try:

        async def listening_port() -> int | None:
            log = await log_of("crawlfleet-coordinator")
            assert coordinator.returncode is None, log
            match = LISTENING.search(log)
            return int(match.group(1)) if match else None

        address = f"127.0.0.1:{await eventually(listening_port, timeout=90, what='the coordinator to listen')}"
        worker_args = ["--coordinator", address, "--allow-loopback", "--kinds", "scrape"]
        processes.append(await start("crawlfleet-worker", *worker_args))

        cli = ("crawlfleet", "--coordinator", address, "--json")
        enqueued = await run(*cli, "enqueue", site.url("/product/1"))
        assert enqueued.returncode == 0, enqueued.stdout + enqueued.stderr
        (job_id,) = [job["id"] for job in json.loads(enqueued.stdout)["jobs"]]

        waited = await run(*cli, "wait", str(job_id))
        assert waited.returncode == 0, waited.stdout + waited.stderr + await log_of("crawlfleet-worker")
        shown = await run(*cli, "jobs", "show", str(job_id))
        assert shown.returncode == 0, shown.stderr
        job = json.loads(shown.stdout)
        assert job["state"] == "JOB_STATE_SUCCEEDED"
        assert "Wheel teapot" in json.dumps(job)

        # The dashboard finds its templates and its vendored chart library inside the installed wheel.
        processes.append(await start("crawlfleet-dashboard", "--coordinators", address, "--listen", "127.0.0.1:0"))

        async def dashboard_url() -> str | None:
            match = DASHBOARD.search(await log_of("crawlfleet-dashboard"))
            return match.group(1) if match else None

        base = await eventually(dashboard_url, timeout=60, what="the dashboard to listen")
        assert base is not None
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            login = await http.get("/login")
            assert login.status_code == 200 and "crawlfleet token" in login.text
            chart_library = await http.get("/static/vendor/uplot/uPlot.iife.min.js")
            assert chart_library.status_code == 200 and "uPlot" in chart_library.text
    finally:
        for process in reversed(processes):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(processes):
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
    assert coordinator.returncode == 0, (await log_of("crawlfleet-coordinator"))[-3000:]
