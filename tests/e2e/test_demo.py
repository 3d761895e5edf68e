"""``crawlfleet demo`` as the README runs it: real processes crawl the demo site from its home page; its
summary against the database and the site's own request log."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from crawlfleet.demo import expected_outcome
from crawlfleet.demo.catalogue import BROKEN_PATH, build_catalogue
from crawlfleet.demo.urls import page_paths
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

    await crawled_from_the_home_page(db, output)


async def crawled_from_the_home_page(db: asyncpg.Pool, output: str) -> None:
    """The demo crawled: one crawl, seeded with the home page only, found every page of the shop by
    following links, down to the shop's depth, and each URL got one job and one attempt."""
    expected = expected_outcome()
    (crawl,) = await db.fetch("SELECT id, state::text AS state, spec, out_of_scope FROM crawls")
    assert crawl["state"] == "finished"
    seeds = await db.fetch("SELECT url FROM crawl_urls WHERE crawl_id = $1 AND depth = 0", crawl["id"])
    assert [urlsplit(r["url"]).path for r in seeds] == ["/"]
    depths = dict(await db.fetch("SELECT depth, count(*) FROM crawl_urls GROUP BY depth"))
    assert max(depths) == expected.crawl_depth and sum(depths.values()) == expected.jobs, depths
    jobs = await db.fetch("SELECT target_url, attempt FROM jobs WHERE kind = 'scrape'")
    targets = [urlsplit(r["target_url"]) for r in jobs]
    assert sorted(t.path + (f"?{t.query}" if t.query else "") for t in targets) == sorted(
        [*page_paths(build_catalogue()), BROKEN_PATH]
    )
    assert {r["attempt"] for r in jobs} == {1}  # no job fetched twice, no URL with two jobs
    assert crawl["out_of_scope"] == expected.offsite_links
    assert re.search(rf"^  links to other sites, not followed: {expected.offsite_links}$", output, re.MULTILINE)
    # The site's own log, as the demo reports it: each page URL requested once, the JavaScript
    # pages too (the browser render=auto escalates to is served the response already fetched).
    assert re.search(r"^  the shop's log: \d+ requests for its 33 page URLs: each page once", output, re.MULTILINE), (
        output
    )
    assert re.search(r"^  DEPTH +STORED +FAILED +UNFINISHED$", output, re.MULTILINE)
    assert re.search(rf"export --crawl {crawl['id']} --output shop.jsonl", output)
    assert re.search(r"^progress: 33 discovered, 33 fetched, 0 queued, 0 leased, depth 3 of 4$", output, re.MULTILINE)
