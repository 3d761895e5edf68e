"""``crawlfleet hosts`` against an in-process coordinator, as test_cli.py runs the other commands."""

from __future__ import annotations

import pytest

from crawlfleet.coordinator.security.auth import Role, TokenEntry
from crawlfleet.coordinator.security.settings import SecuritySettings
from tests.conftest import RunningCoordinator, StartCoordinator
from tests.helpers import lease_request, scrape
from tests.integration.jobs import enqueue
from tests.integration.test_cli import cli


async def test_list_and_show(coord: RunningCoordinator) -> None:
    await enqueue(coord, *(scrape(f"https://{h}/") for h in ("a.example", "b.example", "b.example:8443")))
    await enqueue(coord, scrape("https://a.example/2"))
    await coord.queue.Lease(lease_request(max_jobs=1))
    listed = await cli(coord, "hosts", "list")
    assert listed.code == 0, listed.err
    lines = listed.out.splitlines()
    assert lines[0].split() == ["HOST", "QUEUED", "IN", "FLIGHT", "DELAY", "LEASES", "POLICY", "STATUS"]
    assert [line.split()[0] for line in lines[1:]] == ["a.example", "b.example", "b.example:8443"]
    assert "default" in lines[1]
    limited = await cli(coord, "hosts", "list", "--limit", "2")
    assert "(first 2; more match: --limit N)" in limited.out
    as_json = (await cli(coord, "--json", "hosts", "list", "--prefix", "b.")).json()
    assert [h["host"] for h in as_json["hosts"]] == ["b.example", "b.example:8443"] and as_json["more"] is False
    assert (await cli(coord, "hosts", "list", "--paused")).out.strip() == "no hosts match"

    shown = await cli(coord, "hosts", "show", "a.example")
    assert shown.code == 0, shown.err
    assert "the fleet defaults" in shown.out and "robots.txt ignored" in shown.out
    by_url = await cli(coord, "--json", "hosts", "show", "https://B.Example:8443/some/page")
    assert by_url.json()["host"] == "b.example:8443" and by_url.json()["queued"] == "1"
    missing = await cli(coord, "hosts", "show", "never.example")
    assert missing.code == 1 and "no host 'never.example'" in missing.err
    misspelled = await cli(coord, "hosts", "show", "A.Example")
    assert misspelled.code == 1 and "(field host)" not in misspelled.err and "host:" in misspelled.err


async def test_set_policies_and_clear(coord: RunningCoordinator) -> None:
    await enqueue(coord, scrape("https://shop.example/"), scrape("https://www.shop.example/"))
    set_run = await cli(
        coord, "hosts", "set", "*.shop.example", "--concurrency", "8", "--delay", "250ms", "--note", "our own site"
    )
    assert set_run.code == 0, set_run.err
    assert "concurrency 8, delay 250ms, robots.txt default; it governs 2 known host(s)" in set_run.out
    robots = (await cli(coord, "--json", "hosts", "set", "www.shop.example", "--robots", "obey")).json()
    assert robots["hosts_governed"] == 1 and robots["policy"]["obey_robots"] is True
    policies = await cli(coord, "hosts", "policies")
    rows = [line.split() for line in policies.out.splitlines()]
    assert rows[0] == ["PATTERN", "CONCURRENCY", "DELAY", "ROBOTS", "UPDATED", "NOTE"]
    assert rows[1][:4] == ["*.shop.example", "8", "250ms", "default"] and rows[1][-3:] == ["our", "own", "site"]
    assert rows[2][:4] == ["www.shop.example", "default", "default", "obey"]
    shown = await cli(coord, "hosts", "show", "shop.example")
    assert "*.shop.example" in shown.out and "8 at once, 250ms, robots.txt ignored" in shown.out
    cleared = await cli(coord, "--json", "hosts", "clear", "www.shop.example")
    assert cleared.code == 0 and cleared.json()["hosts_released"] == 1
    again = await cli(coord, "hosts", "clear", "www.shop.example")
    assert again.code == 1 and "no host policy" in again.err
    bad = await cli(coord, "hosts", "set", "shop.example", "--concurrency", "0")
    assert bad.code == 1 and "max_concurrency" in bad.err
    assert (await cli(coord, "hosts", "set", "shop.example", "--delay", "soon")).code == 2
    with pytest.raises(SystemExit) as usage:  # argparse refuses it
        await cli(coord, "hosts", "set", "shop.example", "--robots", "maybe")
    assert usage.value.code == 2
    assert (await cli(coord, "--json", "hosts", "policies")).json()["policies"][0]["pattern"] == "*.shop.example"


async def test_pause_and_resume(coord: RunningCoordinator) -> None:
    await enqueue(coord, scrape("https://site.example/1"), scrape("https://site.example/2"))
    paused = await cli(coord, "hosts", "pause", "site.example", "--for", "1h", "--reason", "maintenance")
    assert paused.code == 0, paused.err
    assert paused.out.startswith("site.example: paused for ") and "(operator: maintenance)" in paused.out
    assert "2 queued job(s) wait" in paused.out
    shorter = await cli(coord, "hosts", "pause", "site.example", "--for", "1m")
    assert "a longer pause was in force and stays" in shorter.out
    listed = await cli(coord, "hosts", "list", "--paused")
    assert "site.example" in listed.out and "operator: maintenance" in listed.out
    forever = await cli(coord, "--json", "hosts", "pause", "https://site.example/")
    assert forever.json()["paused"] is True and "paused_until" not in forever.json()
    assert list((await coord.queue.Lease(lease_request(max_jobs=10))).jobs) == []
    resumed = await cli(coord, "hosts", "resume", "site.example")
    assert resumed.code == 0 and resumed.out.startswith("site.example: resumed; 2 queued job(s), ready")
    assert len((await coord.queue.Lease(lease_request(max_jobs=10))).jobs) == 2
    assert (await cli(coord, "hosts", "resume", "never.example")).code == 1
    assert (await cli(coord, "hosts", "pause", "site.example", "--for", "forever")).code == 2


async def test_hosts_need_the_admin_role(start_coordinator: StartCoordinator) -> None:
    tokens = (TokenEntry.from_token(Role.PRODUCER, "cli-producer", "producer-secret"),)
    coord = await start_coordinator(security=SecuritySettings(tokens=tokens))
    denied = await cli(coord, "--token", "producer-secret", "hosts", "list")
    assert denied.code == 5 and "admin role" in denied.err
