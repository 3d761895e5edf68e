"""Crawls end to end: coordinator and worker processes crawl linked loopback sites whose own request
logs are the evidence. Depth and page limits are exact with four workers on two coordinators,
every URL is fetched once per crawl, scopes, patterns, relative links, `<base href>`, redirects and
a calendar trap behave as docs/crawls.md says, and a worker killed mid-crawl loses nothing."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg
import grpc
import pytest

from crawlfleet.v1 import crawls_pb2 as cpb
from crawlfleet.v1 import crawls_pb2_grpc
from tests import pg
from tests.e2e.processes import Fleet
from tests.helpers import eventually
from tests.linked_site import Graph, LinkedSite, html, reachable, shop

pytestmark = pytest.mark.e2e
WORKERS = 4
SLOTS = "4"
CRAWL_TIMEOUT = 90.0


@dataclass
class Crawler:
    """Four workers, two on each of two coordinators, serving one database."""

    crawls: crawls_pb2_grpc.CrawlsAsyncStub
    db: asyncpg.Pool


@pytest.fixture(scope="module")
async def crawler_dsn(pg_admin_dsn: str) -> AsyncIterator[str]:
    dsn = await pg.create_database(pg_admin_dsn)
    yield dsn
    await pg.drop_database(pg_admin_dsn, dsn)


@pytest.fixture(scope="module")
async def crawler(tmp_path_factory: pytest.TempPathFactory, crawler_dsn: str) -> AsyncIterator[Crawler]:
    """One fleet for the crawls of this module (each crawls sites of its own): starting processes
    is most of the time an end-to-end test takes."""
    fleet = Fleet(tmp_path_factory.mktemp("crawl-fleet"))
    try:
        coordinators = [await fleet.coordinator(f"coordinator-{n}", crawler_dsn) for n in range(2)]
        for n in range(WORKERS):
            fleet.worker(f"worker-{n}", coordinators[n % 2].port or 0, "--slots", SLOTS)
        async with (
            asyncpg.create_pool(crawler_dsn, min_size=1, max_size=2) as pool,
            grpc.aio.insecure_channel(f"127.0.0.1:{coordinators[0].port}") as channel,
        ):

            async def all_workers_leasing() -> bool:
                return bool(await pool.fetchval("SELECT count(*) FROM workers") == WORKERS)

            await eventually(all_workers_leasing, timeout=60, what="every worker to call Lease")
            yield Crawler(crawls_pb2_grpc.CrawlsStub(channel), pool)
    finally:
        fleet.kill_all()


@pytest.fixture
def sites() -> Iterator[Callable[[str], LinkedSite]]:
    """Starts linked sites on a loopback address each; all are stopped at the end."""
    started: list[LinkedSite] = []

    def start(host: str = "127.0.0.1") -> LinkedSite:
        site = LinkedSite(host).start()
        started.append(site)
        return site

    yield start
    for site in started:
        site.stop()


async def run_crawl(crawls: crawls_pb2_grpc.CrawlsAsyncStub, spec: cpb.CrawlSpec) -> cpb.Crawl:
    """Start a crawl and wait until it has finished; its final progress."""
    started = await crawls.StartCrawl(cpb.StartCrawlRequest(spec=spec))
    return await finished_crawl(crawls, started.crawl_id)


async def finished_crawl(crawls: crawls_pb2_grpc.CrawlsAsyncStub, crawl_id: int) -> cpb.Crawl:
    async def finished() -> cpb.Crawl | None:
        crawl = (await crawls.GetCrawl(cpb.GetCrawlRequest(crawl_id=crawl_id))).crawl
        return crawl if crawl.state == cpb.CRAWL_STATE_FINISHED else None

    crawl = await eventually(finished, timeout=CRAWL_TIMEOUT, interval=0.1, what=f"crawl {crawl_id} to finish")
    assert crawl is not None
    return crawl


def fetched_once(*sites: LinkedSite) -> set[str]:
    """The URLs the sites served, each of which must have been requested exactly once."""
    urls: set[str] = set()
    for site in sites:
        counts = site.fetched()
        assert [url for url, n in counts.items() if n > 1] == []
        urls |= set(counts)
    return urls


async def crawl_urls(db: asyncpg.Pool, crawl_id: int) -> dict[str, int]:
    rows = await db.fetch("SELECT url, depth FROM crawl_urls WHERE crawl_id = $1", crawl_id)
    return {row["url"]: row["depth"] for row in rows}


async def stored_pages(db: asyncpg.Pool, crawl_id: int) -> dict[str, int]:
    """Pages stored per URL for the crawl."""
    rows = await db.fetch(
        "SELECT j.target_url, count(*) AS n FROM pages AS p JOIN jobs AS j ON j.id = p.job_id"
        " WHERE j.crawl_id = $1 GROUP BY 1",
        crawl_id,
    )
    return {row["target_url"]: row["n"] for row in rows}


def everywhere(_: str) -> bool:
    return True


def web(*sites: LinkedSite) -> Graph:
    return {url: links for site in sites for url, links in site.graph.items()}


async def test_depth_limit_is_exact_and_relative_links_and_base_href_resolve(
    crawler: Crawler, sites: Callable[[str], LinkedSite]
) -> None:
    site = sites("127.0.0.1")
    shop(site)
    crawl = await run_crawl(crawler.crawls, cpb.CrawlSpec(seeds=[site.url("/")], max_depth=2))
    expected = reachable([site.url("/")], site.graph, max_depth=2, follows=everywhere)
    # Every category's products resolve against its <base href="/p/">: were it ignored, the site
    # would have been asked for /c/<k>-<i>, which it does not have. Nothing else was asked for.
    assert fetched_once(site) == set(expected)
    assert len(expected) == 1 + 6 + 6 * 20 + 6  # home, categories, products, featured products' reviews
    # Depth 1 pages are only found from the seed, so at max_depth 2 each page's depth is its distance.
    assert await crawl_urls(crawler.db, crawl.id) == expected
    assert (crawl.pages_enqueued, crawl.succeeded, crawl.failed) == (len(expected), len(expected), 0)
    assert crawl.over_limit > 0  # the depth 2 pages' links


async def test_page_limit_is_exact_with_four_workers_on_two_coordinators(
    crawler: Crawler, sites: Callable[[str], LinkedSite]
) -> None:
    site = sites("127.0.0.1")
    shop(site)
    crawl = await run_crawl(crawler.crawls, cpb.CrawlSpec(seeds=[site.url("/")], max_depth=10, max_pages=60))
    everything = reachable([site.url("/")], site.graph, max_depth=10, follows=everywhere)
    assert len(everything) > 60
    fetched = fetched_once(site)
    assert len(fetched) == 60 and fetched <= set(everything)
    assert set(await crawl_urls(crawler.db, crawl.id)) == fetched
    assert await stored_pages(crawler.db, crawl.id) == dict.fromkeys(fetched, 1)
    assert (crawl.pages_enqueued, crawl.succeeded, crawl.failed) == (60, 60, 0)


async def test_allow_and_deny_patterns(crawler: Crawler, sites: Callable[[str], LinkedSite]) -> None:
    site = sites("127.0.0.1")
    shop(site)
    home = site.url("/")
    spec = cpb.CrawlSpec(
        seeds=[home],
        max_depth=10,
        allow=[home, site.url("/c/*"), site.url("/p/1-*")],
        deny=["*/reviews*"],
    )
    crawl = await run_crawl(crawler.crawls, spec)

    def wanted(url: str) -> bool:
        allowed = url == home or url.startswith((site.url("/c/"), site.url("/p/1-")))
        return allowed and "/reviews" not in url

    expected = reachable([home], site.graph, max_depth=10, follows=wanted)
    assert len(expected) == 1 + 6 + 20
    assert fetched_once(site) == set(expected)
    assert crawl.out_of_scope > 0 and crawl.succeeded == len(expected)


@dataclass
class ThreeSites:
    """`first` (the seed's), `other_host` on 127.0.0.2, `other_port` on the seed's host, linked:
    first → both others; each other → a page of `first` only it links to."""

    first: LinkedSite
    other_host: LinkedSite
    other_port: LinkedSite

    @classmethod
    def start(cls, sites: Callable[[str], LinkedSite]) -> ThreeSites:
        first, other_host, other_port = sites("127.0.0.1"), sites("127.0.0.2"), sites("127.0.0.1")
        first.add(
            "/",
            "First",
            [
                ("/a", first.url("/a")),
                (other_host.url("/"), other_host.url("/")),
                (other_port.url("/"), other_port.url("/")),
            ],
        )
        first.add("/a", "A", [("/", first.url("/"))])
        for name, site in (("host", other_host), ("port", other_port)):
            back = first.url(f"/from-other-{name}")
            site.add("/", f"Other {name}", [("inner", site.url("/inner")), (back, back)])
            site.add("/inner", f"Other {name} inner", [])
            first.add(f"/from-other-{name}", f"From other {name}", [])
        return cls(first, other_host, other_port)


@pytest.mark.parametrize(
    ("scope", "deny", "follows"),
    [
        # The seed's host name, any port: the other port's site and what it links back to.
        (cpb.CRAWL_SCOPE_SAME_HOSTNAME, [], lambda url, seed: urlsplit(url).hostname == "127.0.0.1"),
        (cpb.CRAWL_SCOPE_SAME_ORIGIN, [], lambda url, seed: url.startswith(seed)),
        (
            cpb.CRAWL_SCOPE_ALL,
            ["http://127.0.0.2:*/inner"],
            lambda url, seed: not (urlsplit(url).hostname == "127.0.0.2" and urlsplit(url).path == "/inner"),
        ),
    ],
    ids=["same-hostname", "same-origin", "all-but-denied"],
)
async def test_scopes(
    crawler: Crawler,
    sites: Callable[[str], LinkedSite],
    scope: cpb.CrawlScope.ValueType,
    deny: list[str],
    follows: Callable[[str, str], bool],
) -> None:
    three = ThreeSites.start(sites)
    seed = three.first.url("/")
    crawl = await run_crawl(crawler.crawls, cpb.CrawlSpec(seeds=[seed], scope=scope, deny=deny))
    graph = web(three.first, three.other_host, three.other_port)
    expected = reachable([seed], graph, max_depth=3, follows=lambda url: follows(url, three.first.base))
    assert fetched_once(three.first, three.other_host, three.other_port) == set(expected)
    assert crawl.succeeded == len(expected)


async def test_a_redirect_out_of_scope_gives_no_links(crawler: Crawler, sites: Callable[[str], LinkedSite]) -> None:
    first, elsewhere = sites("127.0.0.1"), sites("127.0.0.2")
    first.add("/", "Home", [(t, first.url(t)) for t in ("/moved", "/old", "/plain")])
    first.redirect("/moved", elsewhere.url("/landing"))  # leaves the scope: its links are not followed
    first.redirect("/old", "/new")  # stays within it: they are
    elsewhere.add("/landing", "Landing", [(first.url("/via-landing"), first.url("/via-landing"))])
    first.add("/new", "New", [("/via-new", first.url("/via-new"))])
    for target in ("/plain", "/via-new", "/via-landing"):
        first.add(target, target, [])
    crawl = await run_crawl(crawler.crawls, cpb.CrawlSpec(seeds=[first.url("/")]))
    assert sorted(first.log) == ["/", "/moved", "/new", "/old", "/plain", "/via-new"]
    assert elsewhere.log == ["/landing"]  # the redirect's target, fetched by following it, only
    urls = await crawl_urls(crawler.db, crawl.id)
    # /new joined the crawl as the final URL of /old's fetch; /landing is out of scope.
    assert sorted(urls) == sorted(first.url(t) for t in ("/", "/moved", "/new", "/old", "/plain", "/via-new"))
    assert crawl.succeeded == 5


async def test_a_redirects_final_url_is_not_fetched_again_when_linked_later(
    crawler: Crawler, sites: Callable[[str], LinkedSite]
) -> None:
    site = sites("127.0.0.1")
    site.add("/", "Home", [("/old", site.url("/old"))])
    site.redirect("/old", "/new")
    # /new's page is stored before /a is even known, and /a links back to /new.
    site.add("/new", "New", [("/a", site.url("/a"))])
    site.add("/a", "A", [("/new", site.url("/new")), ("/old", site.url("/old"))])
    crawl = await run_crawl(crawler.crawls, cpb.CrawlSpec(seeds=[site.url("/")]))
    assert fetched_once(site) == {site.url(t) for t in ("/", "/old", "/new", "/a")}  # the site's own log
    assert await crawl_urls(crawler.db, crawl.id) == {
        site.url("/"): 0,
        site.url("/old"): 1,
        site.url("/new"): 1,  # at the depth of the page that was redirected there
        site.url("/a"): 2,
    }
    assert crawl.succeeded == 3


async def test_a_calendar_trap_stays_within_max_query_variants(
    crawler: Crawler, sites: Callable[[str], LinkedSite]
) -> None:
    site = sites("127.0.0.1")
    site.add("/", "Home", [("/calendar?month=1", site.url("/calendar?month=1")), ("/about", site.url("/about"))])
    site.add("/about", "About", [])

    def month(query: str) -> bytes:
        n = int(query.removeprefix("month="))
        # The next month forever (a query-only relative link), and back to the first.
        return html(f"Month {n}", [f"?month={n + 1}", "/calendar?month=1"])

    site.generated["/calendar"] = month
    spec = cpb.CrawlSpec(seeds=[site.url("/")], max_depth=1000, max_query_variants=5)
    crawl = await run_crawl(crawler.crawls, spec)
    fetched_once(site)
    assert sorted(site.log) == sorted(["/", "/about", *(f"/calendar?month={n}" for n in range(1, 6))])
    assert (crawl.succeeded, crawl.over_limit) == (7, 1)  # month 6, offered by month 5


async def test_a_worker_killed_mid_crawl_loses_nothing(
    fleet: Fleet, db_dsn: str, db: asyncpg.Pool, sites: Callable[[str], LinkedSite]
) -> None:
    # A short lease, so that the killed worker's pages come back soon.
    coordinator = await fleet.coordinator("coordinator", db_dsn, "--lease-seconds", "2")
    workers = {f"worker-{n}": fleet.worker(f"worker-{n}", coordinator.port or 0, "--slots", SLOTS) for n in range(4)}
    site = sites("127.0.0.1")
    shop(site)
    # The products of one category are slow: requests for them wait until released, so that some
    # are in the middle of being fetched when a worker dies.
    held = {f"/p/3-{i}" for i in range(1, 20)}
    site.held |= held
    everything = reachable([site.url("/")], site.graph, max_depth=10, follows=everywhere)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{coordinator.port}") as channel:
        crawls = crawls_pb2_grpc.CrawlsStub(channel)
        started = await crawls.StartCrawl(
            cpb.StartCrawlRequest(spec=cpb.CrawlSpec(seeds=[site.url("/")], max_depth=10))
        )

        async def fetching_a_held_page() -> tuple[str, str] | None:
            """(worker, URL): a worker holding the lease of a held page whose request the site has."""
            asked = {site.url(t) for t in site.log if t in held}
            rows = await db.fetch(
                "SELECT leased_by, target_url FROM jobs WHERE state = 'leased' AND crawl_id = $1", started.crawl_id
            )
            return next(((row["leased_by"], row["target_url"]) for row in rows if row["target_url"] in asked), None)

        fetching = await eventually(fetching_a_held_page, timeout=60, what="a held page being fetched")
        assert fetching is not None
        doomed, interrupted = fetching
        workers[doomed].signal(signal.SIGKILL)
        assert await workers[doomed].wait_exit(10) == -signal.SIGKILL
        site.release()

        crawl = await finished_crawl(crawls, started.crawl_id)

    # Nothing lost: every page of the site is in the crawl, stored exactly once, all jobs succeeded.
    depths = await crawl_urls(db, crawl.id)
    assert set(depths) == set(everything)
    # A page's depth is that of the first page to offer it, plus one: never less than its distance.
    assert all(depths[url] >= distance for url, distance in everything.items())
    assert await stored_pages(db, crawl.id) == dict.fromkeys(everything, 1)
    assert (crawl.pages_enqueued, crawl.succeeded, crawl.failed) == (len(everything), len(everything), 0)
    # Fetched at least once each; again only after a lease of the page expired: the killed
    # worker's, or (on a machine loaded enough to delay a live worker's heartbeats past the
    # 2 s lease) another's. Each expired lease allows one more fetch, no more.
    fetched = site.fetched()
    assert set(fetched) == set(everything)
    attempts = await db.fetch(
        "SELECT a.target_url, a.worker_id FROM job_attempts AS a JOIN jobs AS j ON j.id = a.job_id"
        " WHERE j.crawl_id = $1 AND a.outcome = 'expired'",
        crawl.id,
    )
    expired = {row["target_url"] for row in attempts if row["worker_id"] == doomed}
    expirations = Counter(row["target_url"] for row in attempts)
    assert fetched[interrupted] >= 2 and interrupted in expired
    assert all(n <= 1 + expirations[url] for url, n in fetched.items()), (fetched, expirations)
    # The pages the killed worker held were stored by the others.
    rescued = await db.fetch(
        "SELECT target_url, worker_id FROM job_attempts WHERE target_url = ANY($1::text[]) AND outcome = 'succeeded'",
        list(expired),
    )
    assert {row["target_url"] for row in rescued} == expired
    assert doomed not in {row["worker_id"] for row in rescued}
