"""``crawlfleet crawl`` and ``export --crawl`` against an in-process coordinator, with a stand-in
worker completing the crawl's pages. ``main(argv)`` runs in a thread, as in test_cli.py."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass
from typing import Any

from crawlfleet.cli.main import main
from crawlfleet.v1 import crawls_pb2, jobs_pb2
from tests.conftest import RunningCoordinator
from tests.helpers import eventually
from tests.integration.crawl_pages import complete_pages, crawl_through, get_crawl, lease_pages, until_ended
from tests.integration.jobs import get_job, make_succeeded

SHOP = "https://shop.example/"
# The shop's pages and their links: two levels below the home page, one link out of scope.
SITE = {
    SHOP: [f"{SHOP}a", f"{SHOP}b", f"{SHOP}private/x", "https://elsewhere.example/"],
    f"{SHOP}a": [f"{SHOP}a/1", SHOP],
    f"{SHOP}b": [f"{SHOP}a"],
}


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Terminal(io.StringIO):
    """A stderr that says it is a terminal, so progress lines are drawn."""

    def isatty(self) -> bool:
        return True


class CtrlC(Terminal):
    """A terminal whose user presses Ctrl-C as soon as the progress line is drawn."""

    def write(self, text: str) -> int:
        if text.startswith("\r") and text.strip():
            raise KeyboardInterrupt
        return super().write(text)


async def cli(coord: RunningCoordinator, *args: str, stderr: io.StringIO | None = None) -> Run:
    out, err = io.StringIO(), stderr or io.StringIO()
    argv = ["--coordinator", coord.address, *args]
    code = await asyncio.to_thread(main, argv, stdin=io.StringIO(), stdout=out, stderr=err)
    return Run(code, out.getvalue(), err.getvalue())


async def start(coord: RunningCoordinator, *args: str) -> int:
    run = await cli(coord, "--json", "crawl", "start", *args)
    assert run.code == 0, run.err
    crawl_id: int = run.json()["crawl_id"]
    return crawl_id


async def test_start_takes_every_option(coord: RunningCoordinator) -> None:
    run = await cli(
        coord,
        "crawl",
        "start",
        SHOP,
        f"{SHOP}sale",
        "--depth",
        "1",
        "--max-pages",
        "40",
        "--max-pages-per-host",
        "30",
        "--max-query-variants",
        "5",
        "--scope",
        "same-domain",
        "--allow",
        f"{SHOP}*",
        "--deny",
        "*/private/*",
        "--deny",
        "*.pdf",
        "--follow",
        "main",
        "--render",
        "auto",
        "--no-images",
        "--drop-tracking",
        "--sort-query",
        "--sitemaps",
        "--priority",
        "7",
        "--max-attempts",
        "2",
    )
    assert run.code == 0, run.err
    assert "2 seed(s) enqueued" in run.out
    crawl_id = int(run.out.split()[2].rstrip(":"))
    assert f"crawlfleet crawl status {crawl_id}" in run.out
    spec = (await get_crawl(coord, crawl_id)).spec
    assert list(spec.seeds) == [SHOP, f"{SHOP}sale"] and spec.scope == crawls_pb2.CRAWL_SCOPE_SAME_DOMAIN
    assert (spec.max_depth, spec.max_pages, spec.max_pages_per_host, spec.max_query_variants) == (1, 40, 30, 5)
    assert list(spec.allow) == [f"{SHOP}*"] and list(spec.deny) == ["*/private/*", "*.pdf"]
    assert spec.drop_tracking_parameters and spec.sort_query and spec.sitemaps and spec.priority == 7
    assert spec.retry_policy.maximum_attempts == 2
    assert spec.page.render == jobs_pb2.RENDER_MODE_AUTO and spec.page.skip_images
    assert list(spec.page.follow_selectors) == ["main"]
    seed = next(job for job in await lease_pages(coord) if job.spec.scrape.url == SHOP)
    stored = await get_job(coord, seed.id)
    assert stored.spec.priority == 7 and stored.max_attempts == 2 and stored.spec.scrape.skip_images


async def test_status_and_export_of_a_finished_crawl(coord: RunningCoordinator) -> None:
    other = await make_succeeded(coord, "https://other.example/")  # not the crawl's: never exported with it
    crawl_id = await start(coord, SHOP, "--depth", "2", "--deny", "*/private/*")
    pages = await crawl_through(coord, SITE)
    assert len(pages) == 4  # the home page, a, b, a/1
    await until_ended(coord, crawl_id)

    status = await cli(coord, "crawl", "status", str(crawl_id))
    assert status.code == 0, status.err
    for text in ("finished", SHOP, "same-hostname; depth up to 2", "4 stored, 0 queued, 0 leased, 0 failed"):
        assert text in status.out
    assert "DEPTH  QUEUED  LEASED  SUCCEEDED  FAILED" in status.out
    depths = [line.split() for line in status.out.splitlines() if line.strip()[:1].isdigit()]
    assert depths == [["0", "0", "0", "1", "0"], ["1", "0", "0", "2", "0"], ["2", "0", "0", "1", "0"]]
    as_json = await cli(coord, "crawl", "status", str(crawl_id), "--json")
    assert as_json.json()["state"] == "CRAWL_STATE_FINISHED" and as_json.json()["succeeded"] == "4"
    assert [d.get("depth", 0) for d in as_json.json()["depths"]] == [0, 1, 2]  # zeros are left out, as in JSON

    export = await cli(coord, "export", "--crawl", str(crawl_id), "--page-size", "1")
    assert export.code == 0, export.err
    records = [json.loads(line) for line in export.out.splitlines()]
    assert [r["job_id"] for r in records] == sorted(pages) and other not in pages
    assert {r["url"] for r in records} == {SHOP, f"{SHOP}a", f"{SHOP}b", f"{SHOP}a/1"}
    assert (await cli(coord, "export", "--crawl", str(crawl_id), "--kind", "noop")).out == ""
    everything = await cli(coord, "export")
    assert len(everything.out.splitlines()) == 5

    missing = await cli(coord, "export", "--crawl", "424242")
    assert missing.code == 1 and "crawl 424242 does not exist" in missing.err and missing.out == ""
    assert (await cli(coord, "export", "--crawl", "0")).code == 2


async def test_unknown_crawls_and_bad_specs_fail_like_jobs_do(coord: RunningCoordinator) -> None:
    for args in (("status", "424242"), ("wait", "424242"), ("cancel", "424242")):
        run = await cli(coord, "crawl", *args)
        assert run.code == 1 and "crawlfleet: crawl 424242 does not exist" in run.err, args
    bad_seed = await cli(coord, "crawl", "start", "ftp://files.example/")
    assert bad_seed.code == 1 and "spec.seeds[0]" in bad_seed.err
    too_deep = await cli(coord, "crawl", "start", SHOP, "--depth", "-1")
    assert too_deep.code == 1 and "spec.max_depth" in too_deep.err
    alone = await cli(coord, "crawl", "start", SHOP, "--timeout", "1m")
    assert alone.code == 2 and "--timeout goes with --wait" in alone.err
    assert (await cli(coord, "crawl", "list")).out.strip() == "no crawls"


async def test_list_newest_first_and_paged(coord: RunningCoordinator) -> None:
    ids = [await start(coord, f"https://s{n}.example/") for n in range(3)]
    listed = await cli(coord, "crawl", "list")
    assert listed.code == 0, listed.err
    rows = [line.split() for line in listed.out.splitlines()[1:]]
    assert [int(row[0]) for row in rows] == ids[::-1]
    assert rows[0][1] == "running" and rows[0][-1] == "https://s2.example/" and "1/10000" in rows[0]
    first = await cli(coord, "--json", "crawl", "list", "--limit", "2")
    assert [int(c["id"]) for c in first.json()["crawls"]] == ids[:0:-1] and first.json()["next_page_token"]
    limited = await cli(coord, "crawl", "list", "--limit", "2")
    assert "there are more: --limit N or --all" in limited.out
    everything = await cli(coord, "--json", "crawl", "list", "--all")
    assert [int(c["id"]) for c in everything.json()["crawls"]] == ids[::-1]
    assert everything.json()["next_page_token"] == ""


async def test_cancel(coord: RunningCoordinator) -> None:
    crawl_id = await start(coord, SHOP, f"{SHOP}a")
    await lease_pages(coord, max_jobs=1)
    run = await cli(coord, "crawl", "cancel", str(crawl_id))
    assert run.code == 0, run.err
    assert f"crawl {crawl_id}: cancelled; 1 queued job(s) cancelled, 1 leased job(s) stop" in run.out
    again = await cli(coord, "--json", "crawl", "cancel", str(crawl_id))
    assert again.code == 0 and again.json() == {
        "crawl_id": crawl_id,
        "state": "cancelled",
        "cancelled_jobs": 0,
        "stopping_jobs": 0,
    }
    waited = await cli(coord, "crawl", "wait", str(crawl_id))
    assert waited.code == 3 and f"crawl {crawl_id} cancelled" in waited.out  # exit 3: it ended cancelled

    finished = await start(coord, "https://done.example/")
    await crawl_through(coord, {})
    await until_ended(coord, finished)
    late = await cli(coord, "crawl", "cancel", str(finished))
    assert late.code == 1 and "not cancelled: it already finished" in late.out


async def test_start_and_wait_shows_progress_until_the_crawl_finishes(coord: RunningCoordinator) -> None:
    terminal = Terminal()
    waiting = asyncio.ensure_future(
        cli(coord, "crawl", "start", SHOP, "--deny", "*/private/*", "--wait", stderr=terminal)
    )
    seed = await eventually(lambda: lease_pages(coord), what="the crawl's seed")
    # The progress line shows the seed leased before any page is stored.
    await eventually(lambda: _shown(terminal, "0 stored, 0 queued, 1 leased"), what="a progress line")
    await complete_pages(coord, seed, SITE)
    await crawl_through(coord, SITE)
    run = await waiting
    assert run.code == 0, run.err
    crawl_id = int(run.out.split()[2].rstrip(":"))
    assert f"crawl {crawl_id} finished: 4 page(s) enqueued, 4 stored, 0 queued, 0 leased, 0 failed" in run.out
    assert "DEPTH" in run.out  # the status report follows
    assert f"crawl {crawl_id} [" in run.err and "pages/s" in run.err
    assert run.err.endswith("\r")  # the line is cleared before the report


async def _shown(terminal: Terminal, text: str) -> bool:
    return text in terminal.getvalue()


async def test_wait_times_out_and_ctrl_c_stops_waiting_not_the_crawl(coord: RunningCoordinator) -> None:
    crawl_id = await start(coord, SHOP)
    timed_out = await cli(coord, "--json", "crawl", "wait", str(crawl_id), "--timeout", "0.2s")
    assert timed_out.code == 4 and timed_out.json()["timed_out"] is True
    assert timed_out.json()["state"] == "running" and timed_out.json()["crawl"]["queued"] == "1"
    text = await cli(coord, "crawl", "start", f"{SHOP}other", "--wait", "--timeout", "0s")
    assert text.code == 4 and "timed out after 0ms: crawl" in text.out and "is still running" in text.out

    interrupted = await cli(coord, "crawl", "wait", str(crawl_id), stderr=CtrlC())
    assert interrupted.code == 130
    assert f"stopped waiting; crawl {crawl_id} goes on" in interrupted.err
    assert (await get_crawl(coord, crawl_id)).state == crawls_pb2.CRAWL_STATE_RUNNING


async def test_refresh_starts_a_new_round_of_an_ended_crawl(coord: RunningCoordinator) -> None:
    crawl_id = await start(coord, SHOP, "--depth", "1")
    running = await cli(coord, "crawl", "refresh", str(crawl_id))
    assert running.code == 1 and "still running" in running.err
    await crawl_through(coord, SITE)
    first = await until_ended(coord, crawl_id)

    refreshed = await cli(coord, "--json", "crawl", "refresh", str(crawl_id))
    assert refreshed.code == 0, refreshed.err
    new_id = refreshed.json()["crawl_id"]
    assert new_id != crawl_id and refreshed.json()["seeds_enqueued"] == 1
    await crawl_through(coord, SITE)
    ended = await until_ended(coord, new_id)
    assert ended.refresh_of == crawl_id and ended.succeeded == first.succeeded == 4
    again = await cli(coord, "crawl", "refresh", str(crawl_id))
    assert again.code == 1 and "refreshed already" in again.err
    assert (await cli(coord, "crawl", "refresh", "424242")).code == 1
