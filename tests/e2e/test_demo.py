"""``crawlfleet demo`` as the README runs it: real processes on the demo site; its summary against the database."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.processes import ROOT

pytestmark = pytest.mark.e2e
FIGURES = (
    "pages stored",
    "rendered in browser",
    "images processed",
    "images failed",
    "distinct images",
    "thumbnails stored",
    "retries",
    "dead",
)


def figures(output: str) -> dict[str, int]:
    """The summary's figures: lines like ``  pages stored         32``."""
    found = {}
    for name in FIGURES:
        match = re.search(rf"^  {name}\s+(\d+)", output, re.MULTILINE)
        assert match, f"no {name!r} in the summary:\n{output}"
        found[name] = int(match.group(1))
    return found


@pytest.mark.timeout(150)
async def test_demo_runs_and_its_summary_matches_the_database(db_dsn: str, db: asyncpg.Pool, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "crawlfleet.cli", "demo", "--database-url", db_dsn, "--log-dir", str(tmp_path)]
    done = await asyncio.to_thread(
        subprocess.run, command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "demo-worker-1 exited 0, demo-worker-2 exited 0, dashboard exited 0, coordinator exited 0" in output
    assert re.search(r"dashboard on http://127\.0\.0\.1:\d+/", output), output
    assert "the demo site expects" not in output, output  # every figure is what the site is built to give
    assert re.search(r"grpcurl -plaintext \S+ crawlfleet\.v1\.Admin/GetQueueStats", output)
    shown = figures(output)

    states = dict(await db.fetch("SELECT state::text, count(*) FROM jobs GROUP BY state"))
    assert states == {"succeeded": shown["pages stored"], "dead": shown["dead"]}
    pages = await db.fetchrow(
        "SELECT count(*) AS stored, count(*) FILTER (WHERE rendered_with = 'browser') AS browser FROM pages"
    )
    assert (pages["stored"], pages["browser"]) == (shown["pages stored"], shown["rendered in browser"])
    images = await db.fetchrow(
        "SELECT count(image_sha256) AS processed, count(error_type) AS failed,"
        " count(DISTINCT image_sha256) AS distinct_images FROM page_images"
    )
    assert images["processed"] == shown["images processed"]
    assert images["failed"] == shown["images failed"]
    assert images["distinct_images"] == shown["distinct images"]
    assert await db.fetchval("SELECT count(*) FROM thumbnails") == shown["thumbnails stored"]
    retries = await db.fetchval("SELECT coalesce(sum(greatest(attempt - 1, 0)), 0) FROM jobs")
    assert retries == shown["retries"]
    dead_urls = [r["target_url"] for r in await db.fetch("SELECT target_url FROM jobs WHERE state = 'dead'")]
    for url in dead_urls:
        assert f" {url}: " in output  # each dead job is listed with its reason
