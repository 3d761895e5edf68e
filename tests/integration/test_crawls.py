"""Crawls through the Crawls API with a simulated worker: discovery in the Complete transaction,
scope, patterns, depth, exact page limits, cancel, finish, progress."""

from __future__ import annotations

import datetime as dt
import itertools

import asyncpg
import grpc
import pytest

from crawlfleet.coordinator.storage.crawls import CrawlStore
from crawlfleet.v1 import crawls_pb2 as cpb
from crawlfleet.v1 import crawls_pb2_grpc, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator
from tests.helpers import eventually, lease_request
from tests.integration.jobs import fail
from tests.integration.test_history_plans import rows_read, settled_plan


def crawls(coord: RunningCoordinator) -> crawls_pb2_grpc.CrawlsAsyncStub:
    return crawls_pb2_grpc.CrawlsStub(coord.channel)


def page_result(job: pb.LeasedJob, links: list[str], final_url: str | None = None) -> pb.CompletedJob:
    url = final_url or job.spec.scrape.url
    result = jobs_pb2.ScrapeResult(
        final_url=url,
        status_code=200,
        content_type="text/html",
        rendered_with=jobs_pb2.RENDER_MODE_HTTP,
        links=[jobs_pb2.Link(url=link) for link in links],
    )
    return pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=jobs_pb2.JobResult(scrape=result))


async def lease_all(coord: RunningCoordinator) -> list[pb.LeasedJob]:
    return list((await coord.queue.Lease(lease_request(max_jobs=100))).jobs)


async def crawl_urls(db: asyncpg.Pool, crawl_id: int) -> dict[str, int]:
    rows = await db.fetch("SELECT url, depth FROM crawl_urls WHERE crawl_id = $1", crawl_id)
    return {row["url"]: row["depth"] for row in rows}


async def test_links_are_followed_within_scope_and_depth_once_each(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    spec = cpb.CrawlSpec(seeds=["https://Shop.Example/"], max_depth=2)
    started = await crawls(coord).StartCrawl(cpb.StartCrawlRequest(spec=spec))
    assert started.seeds_enqueued == 1
    (home,) = await lease_all(coord)
    assert home.spec.scrape.url == "https://shop.example/"
    links = [
        "https://shop.example/a",
        "https://shop.example/b#top",  # the fragment goes
        "https://shop.example/a",  # twice on one page: once
        "http://shop.example:80/c",  # another scheme of the same host name: in scope
        "https://www.shop.example/",  # another host name: out of scope by default
        "https://elsewhere.example/",
        "mailto:someone@shop.example",
    ]
    await coord.queue.Complete(pb.CompleteRequest(jobs=[page_result(home, links)]))
    assert await crawl_urls(db, started.crawl_id) == {
        "https://shop.example/": 0,
        "https://shop.example/a": 1,
        "https://shop.example/b": 1,
        "http://shop.example/c": 1,
    }
    level1 = await lease_all(coord)
    assert sorted(j.spec.scrape.url for j in level1) == [
        "http://shop.example/c",
        "https://shop.example/a",
        "https://shop.example/b",
    ]
    # Depth 2 pages are the last: their links are not followed. Known URLs are not enqueued again.
    await coord.queue.Complete(
        pb.CompleteRequest(
            jobs=[page_result(j, ["https://shop.example/", f"{j.spec.scrape.url}/deeper"]) for j in level1]
        )
    )
    level2 = await lease_all(coord)
    assert len(level2) == 3 and all(j.spec.scrape.url.endswith("/deeper") for j in level2)
    await coord.queue.Complete(
        pb.CompleteRequest(jobs=[page_result(j, ["https://shop.example/deepest"]) for j in level2])
    )
    assert await lease_all(coord) == []

    async def finished() -> bool:
        crawl = (await crawls(coord).GetCrawl(cpb.GetCrawlRequest(crawl_id=started.crawl_id))).crawl
        return crawl.state == cpb.CRAWL_STATE_FINISHED

    await eventually(finished, what="the crawl to finish once no job is left")
    crawl = (await crawls(coord).GetCrawl(cpb.GetCrawlRequest(crawl_id=started.crawl_id))).crawl
    assert (crawl.pages_enqueued, crawl.succeeded, crawl.out_of_scope) == (7, 7, 2)
    assert crawl.over_limit == 3  # /deepest, beyond max_depth, offered by each of three pages
    assert [(d.depth, d.succeeded) for d in crawl.depths] == [(0, 1), (1, 3), (2, 3)]


async def test_max_pages_is_exact_and_patterns_filter(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    spec = cpb.CrawlSpec(
        seeds=["https://shop.example/"],
        max_pages=5,
        allow=["https://shop.example/products/*"],
        deny=["*/products/hidden*"],
    )
    spec.allow.append("https://shop.example/")
    started = await crawls(coord).StartCrawl(cpb.StartCrawlRequest(spec=spec))
    (home,) = await lease_all(coord)
    links = ["https://shop.example/about", "https://shop.example/products/hidden-1"]
    links += [f"https://shop.example/products/{n}" for n in range(10)]
    await coord.queue.Complete(pb.CompleteRequest(jobs=[page_result(home, links)]))
    urls = await crawl_urls(db, started.crawl_id)
    # The first four allowed links, in page order, fill the crawl's five pages.
    assert sorted(urls) == ["https://shop.example/"] + [f"https://shop.example/products/{n}" for n in range(4)]
    crawl = (await crawls(coord).GetCrawl(cpb.GetCrawlRequest(crawl_id=started.crawl_id))).crawl
    assert (crawl.pages_enqueued, crawl.out_of_scope, crawl.over_limit) == (5, 2, 6)


async def test_query_variants_per_path_are_capped(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    spec = cpb.CrawlSpec(seeds=["https://cal.example/"], max_query_variants=3)
    started = await crawls(coord).StartCrawl(cpb.StartCrawlRequest(spec=spec))
    (home,) = await lease_all(coord)
    trap = [f"https://cal.example/calendar?month={n}" for n in range(50)]
    await coord.queue.Complete(pb.CompleteRequest(jobs=[page_result(home, trap)]))
    assert len(await crawl_urls(db, started.crawl_id)) == 1 + 3


async def test_a_redirect_out_of_scope_is_not_followed(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    started = await crawls(coord).StartCrawl(cpb.StartCrawlRequest(spec=cpb.CrawlSpec(seeds=["https://shop.example/"])))
    (home,) = await lease_all(coord)
    away = page_result(home, ["https://shop.example/x"], final_url="https://elsewhere.example/")
    await coord.queue.Complete(pb.CompleteRequest(jobs=[away]))
    assert list(await crawl_urls(db, started.crawl_id)) == ["https://shop.example/"]


async def test_cancel_stops_discovery_and_cancels_queued_jobs(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    spec = cpb.CrawlSpec(seeds=["https://shop.example/", "https://shop.example/2"])
    started = await crawls(coord).StartCrawl(cpb.StartCrawlRequest(spec=spec))
    assert started.seeds_enqueued == 2
    leased = (await coord.queue.Lease(lease_request(max_jobs=1))).jobs[0]
    cancelled = await crawls(coord).CancelCrawl(cpb.CancelCrawlRequest(crawl_id=started.crawl_id))
    assert (cancelled.state, cancelled.cancelled_jobs, cancelled.stopping_jobs) == (cpb.CRAWL_STATE_CANCELLED, 1, 1)
    # The leased page still completes, but the cancelled crawl takes no more pages.
    await coord.queue.Complete(pb.CompleteRequest(jobs=[page_result(leased, ["https://shop.example/new"])]))
    assert "https://shop.example/new" not in await crawl_urls(db, started.crawl_id)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (cpb.CrawlSpec(), "spec.seeds"),
        (cpb.CrawlSpec(seeds=["ftp://x.example/"]), "spec.seeds[0]"),
        (cpb.CrawlSpec(seeds=["https://x.example/"], max_depth=-1), "spec.max_depth"),
        (cpb.CrawlSpec(seeds=["https://x.example/"], max_pages=-5), "spec.max_pages"),
        (cpb.CrawlSpec(seeds=["https://x.example/"], deny=[""]), "spec.deny[0]"),
        (cpb.CrawlSpec(seeds=["https://x.example/"], priority=101), "spec.priority"),
        (cpb.CrawlSpec(seeds=["https://x.example/"], scope=99), "spec.scope"),  # type: ignore[arg-type]
        (cpb.CrawlSpec(seeds=["https://x.example/"], page=jobs_pb2.ScrapeSpec(render=9)), "spec.page.render"),  # type: ignore[arg-type]
    ],
)
async def test_bad_specs_name_the_field(coord: RunningCoordinator, spec: cpb.CrawlSpec, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await crawls(coord).StartCrawl(cpb.StartCrawlRequest(spec=spec))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(f"{field}:")


async def test_unknown_crawls_are_not_found_and_crawls_list_newest_first(coord: RunningCoordinator) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await crawls(coord).GetCrawl(cpb.GetCrawlRequest(crawl_id=999))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    ids = [
        (
            await crawls(coord).StartCrawl(cpb.StartCrawlRequest(spec=cpb.CrawlSpec(seeds=[f"https://s{n}.example/"])))
        ).crawl_id
        for n in range(3)
    ]
    first = await crawls(coord).ListCrawls(cpb.ListCrawlsRequest(page_size=2))
    assert [c.id for c in first.crawls] == ids[::-1][:2]
    rest = await crawls(coord).ListCrawls(cpb.ListCrawlsRequest(page_size=2, page_token=first.next_page_token))
    assert [c.id for c in rest.crawls] == ids[:1] and not rest.next_page_token


async def test_a_crawl_with_sitemaps_takes_the_pages_they_list(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    spec = cpb.CrawlSpec(seeds=["https://shop.example/start"], sitemaps=True, max_depth=0)
    started = await crawls(coord).StartCrawl(cpb.StartCrawlRequest(spec=spec))
    jobs = await lease_all(coord)
    (sitemap,) = [j for j in jobs if j.kind == "sitemap"]
    assert sitemap.spec.sitemap.url == "https://shop.example/"
    listed = jobs_pb2.SitemapResult(
        entries=[jobs_pb2.SitemapEntry(url=u) for u in ["https://shop.example/p1", "https://other.example/p"]]
    )
    done = pb.CompletedJob(
        job_id=sitemap.id, lease_token=sitemap.lease_token, result=jobs_pb2.JobResult(sitemap=listed)
    )
    await coord.queue.Complete(pb.CompleteRequest(jobs=[done]))
    # Listed pages join at depth 0, like seeds; the crawl's scope still applies.
    assert await crawl_urls(db, started.crawl_id) == {"https://shop.example/start": 0, "https://shop.example/p1": 0}


def versioned(job: pb.LeasedJob, links: list[str], etag: str, *, not_modified: bool = False) -> pb.CompletedJob:
    done = page_result(job, [] if not_modified else links)
    page = done.result.scrape
    page.headers["etag"] = etag
    if not_modified:
        page.status_code, page.not_modified = 304, True
    return done


async def finish(coord: RunningCoordinator, crawl_id: int) -> cpb.Crawl:
    async def ended() -> bool:
        crawl = (await crawls(coord).GetCrawl(cpb.GetCrawlRequest(crawl_id=crawl_id))).crawl
        return crawl.state == cpb.CRAWL_STATE_FINISHED

    await eventually(ended, what=f"crawl {crawl_id} to finish")
    return (await crawls(coord).GetCrawl(cpb.GetCrawlRequest(crawl_id=crawl_id))).crawl


async def test_a_refresh_fetches_conditionally_and_follows_unchanged_pages(coord: RunningCoordinator) -> None:
    spec = cpb.CrawlSpec(seeds=["https://shop.example/"], max_depth=1)
    first = await crawls(coord).StartCrawl(cpb.StartCrawlRequest(spec=spec))
    (home,) = await lease_all(coord)
    await coord.queue.Complete(pb.CompleteRequest(jobs=[versioned(home, ["https://shop.example/a"], '"home-1"')]))
    (page_a,) = await lease_all(coord)
    await coord.queue.Complete(pb.CompleteRequest(jobs=[versioned(page_a, [], '"a-1"')]))
    await finish(coord, first.crawl_id)

    refresh = await crawls(coord).RefreshCrawl(cpb.RefreshCrawlRequest(crawl_id=first.crawl_id))
    (home,) = await lease_all(coord)
    assert home.spec.scrape.if_none_match == '"home-1"'
    # Unchanged: no links of its own, but the crawl goes on with those of its previous version.
    await coord.queue.Complete(pb.CompleteRequest(jobs=[versioned(home, [], '"home-1"', not_modified=True)]))
    (page_a,) = await lease_all(coord)
    assert (page_a.spec.scrape.url, page_a.spec.scrape.if_none_match) == ("https://shop.example/a", '"a-1"')
    await coord.queue.Complete(pb.CompleteRequest(jobs=[versioned(page_a, [], '"a-2"')]))
    crawl = await finish(coord, refresh.crawl_id)
    assert (crawl.refresh_of, crawl.succeeded) == (first.crawl_id, 2)
    # A crawl is refreshed once; a running one not at all.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await crawls(coord).RefreshCrawl(cpb.RefreshCrawlRequest(crawl_id=first.crawl_id))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    previous = (await crawls(coord).GetCrawl(cpb.GetCrawlRequest(crawl_id=first.crawl_id))).crawl
    assert previous.refreshed_by == refresh.crawl_id


async def test_a_crawl_with_an_interval_starts_its_next_round_when_it_ends(
    coord: RunningCoordinator, db: asyncpg.Pool
) -> None:
    spec = cpb.CrawlSpec(seeds=["https://news.example/"], max_depth=0)
    spec.refresh_interval.FromSeconds(3600)
    first = await crawls(coord).StartCrawl(cpb.StartCrawlRequest(spec=spec))
    (home,) = await lease_all(coord)
    await coord.queue.Complete(pb.CompleteRequest(jobs=[versioned(home, [], '"n-1"')]))
    ended = await finish(coord, first.crawl_id)
    assert ended.refreshed_by
    due = await db.fetchval("SELECT run_at FROM jobs WHERE crawl_id = $1", ended.refreshed_by)
    assert (due - ended.finished_at.ToDatetime(tzinfo=due.tzinfo)).total_seconds() == 3600
    assert await lease_all(coord) == []  # not due for an hour


async def test_watch_streams_progress_until_the_crawl_ends(coord: RunningCoordinator) -> None:
    started = await crawls(coord).StartCrawl(cpb.StartCrawlRequest(spec=cpb.CrawlSpec(seeds=["https://w.example/"])))
    request = cpb.WatchCrawlRequest(crawl_id=started.crawl_id)
    request.interval.FromMilliseconds(200)
    stream = crawls(coord).WatchCrawl(request)
    first = await stream.read()
    assert isinstance(first, cpb.WatchCrawlResponse) and first.crawl.queued == 1
    (home,) = await lease_all(coord)
    await coord.queue.Complete(pb.CompleteRequest(jobs=[page_result(home, ["https://w.example/next"])]))
    (nxt,) = await lease_all(coord)
    await coord.queue.Complete(pb.CompleteRequest(jobs=[page_result(nxt, [])]))
    seen = [first.crawl]
    while isinstance(response := await stream.read(), cpb.WatchCrawlResponse):
        seen.append(response.crawl)
    assert seen[-1].state == cpb.CRAWL_STATE_FINISHED and seen[-1].succeeded == 2
    assert all(a.succeeded <= b.succeeded for a, b in itertools.pairwise(seen))


async def test_watching_an_unknown_crawl_is_not_found(coord: RunningCoordinator) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in crawls(coord).WatchCrawl(cpb.WatchCrawlRequest(crawl_id=12345)):
            pass
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_links_over_the_query_limit_leave_the_host_limit_alone(
    coord: RunningCoordinator, db: asyncpg.Pool
) -> None:
    spec = cpb.CrawlSpec(seeds=["https://cal.example/"], max_pages_per_host=5, max_query_variants=2)
    started = await crawls(coord).StartCrawl(cpb.StartCrawlRequest(spec=spec))
    (home,) = await lease_all(coord)
    trap = [f"https://cal.example/calendar?month={n}" for n in range(10)]
    await coord.queue.Complete(pb.CompleteRequest(jobs=[page_result(home, [*trap, "https://cal.example/a"])]))
    # Two variants of the calendar, then /a: the eight variants refused are no pages of the host.
    assert sorted(await crawl_urls(db, started.crawl_id)) == [
        "https://cal.example/",
        "https://cal.example/a",
        "https://cal.example/calendar?month=0",
        "https://cal.example/calendar?month=1",
    ]


async def test_depth_is_the_shortest_path_found_before_a_page_is_stored(
    coord: RunningCoordinator, db: asyncpg.Pool
) -> None:
    """A URL first found deep, then found closer to the seed while its job waits, takes the shorter
    depth: its links are followed as far as a breadth-first crawl would follow them."""
    site = "https://shop.example"
    spec = cpb.CrawlSpec(seeds=[f"{site}/"], max_depth=3)
    started = await crawls(coord).StartCrawl(cpb.StartCrawlRequest(spec=spec))
    by_url: dict[str, pb.LeasedJob] = {}

    async def lease_and_complete(url: str, links: list[str]) -> None:
        for job in await lease_all(coord):
            by_url[job.spec.scrape.url] = job
        await coord.queue.Complete(pb.CompleteRequest(jobs=[page_result(by_url.pop(url), links)]))

    await lease_and_complete(f"{site}/", [f"{site}/b", f"{site}/slow"])
    await lease_and_complete(f"{site}/b", [f"{site}/c"])
    await lease_and_complete(f"{site}/c", [f"{site}/x"])  # /x first found at depth 3, the deepest
    assert (await crawl_urls(db, started.crawl_id))[f"{site}/x"] == 3
    # /slow is at depth 1, so /x is at 2; /x is leased by now (lease_and_complete leases every
    # job due): the depth its links get is read from the seen set when it is stored.
    await lease_and_complete(f"{site}/slow", [f"{site}/x"])
    assert (await crawl_urls(db, started.crawl_id))[f"{site}/x"] == 2
    await lease_and_complete(f"{site}/x", [f"{site}/y"])
    assert (await crawl_urls(db, started.crawl_id)).get(f"{site}/y") == 3  # first-found depth would cut it


async def test_the_rate_counts_the_crawls_pages_of_the_last_minute(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    spec = cpb.CrawlSpec(seeds=["https://rate.example/", "https://rate.example/gone", "https://rate.example/b"])
    started = await crawls(coord).StartCrawl(cpb.StartCrawlRequest(spec=spec))
    other = await crawls(coord).StartCrawl(cpb.StartCrawlRequest(spec=cpb.CrawlSpec(seeds=["https://other.example/"])))
    by_url = {job.spec.scrape.url: job for job in await lease_all(coord)}
    await fail(coord, by_url["https://rate.example/gone"])  # no page stored: not in the rate
    await coord.queue.Complete(
        pb.CompleteRequest(
            jobs=[page_result(by_url[url], []) for url in ("https://rate.example/", "https://other.example/")]
        )
    )
    crawl = (await crawls(coord).GetCrawl(cpb.GetCrawlRequest(crawl_id=started.crawl_id))).crawl
    assert crawl.pages_per_second == pytest.approx(1 / 60)  # its one page, not the other crawl's
    await coord.queue.Complete(pb.CompleteRequest(jobs=[page_result(by_url["https://rate.example/b"], [])]))
    finished = await db.fetchval("SELECT max(finished_at) FROM jobs WHERE crawl_id = $1", started.crawl_id)
    store = CrawlStore(db)
    report = await store.report(started.crawl_id, owner=None, now=finished)
    assert report is not None and report.recent_pages == 2
    later = await store.report(started.crawl_id, owner=None, now=finished + dt.timedelta(minutes=1, seconds=1))
    assert later is not None and later.recent_pages == 0  # a minute later, none is recent
    theirs = await store.report(other.crawl_id, owner=None, now=finished)
    assert theirs is not None and theirs.recent_pages == 1


async def test_the_rate_reads_the_crawls_last_minute_not_its_history(db: asyncpg.Pool) -> None:
    crawl_id = await db.fetchval(
        "INSERT INTO crawls (spec, max_depth, max_pages, max_pages_per_host, max_query_variants, priority,"
        " max_attempts, retry_initial_ms, retry_multiplier, retry_max_ms, created_at, starts_at)"
        " VALUES ('\\x'::bytea, 3, 100000, 100000, 100, 0, 3, 1000, 2, 300000, now(), now()) RETURNING id"
    )
    history = """
        INSERT INTO jobs (kind, state, spec, run_at, created_at, attempt, max_attempts, retry_initial_ms,
                          retry_multiplier, retry_max_ms, lease_token, finished_at, result, crawl_id, depth)
        SELECT 'noop', 'succeeded', '\\x'::bytea, now() - $2::interval, now() - $2::interval, 1, 3, 1000, 2, 300000,
               gen_random_uuid(), now() - $2::interval, '\\x'::bytea, $3::bigint, 0
        FROM generate_series(1, $1::int)
    """
    await db.execute(history, 3000, dt.timedelta(hours=2), crawl_id)
    await db.execute(history, 7, dt.timedelta(seconds=10), crawl_id)
    await db.execute("ANALYZE jobs")
    async with db.acquire() as conn:
        plan = await settled_plan(conn, "crawl_recent_pages", [str(crawl_id), "NULL"])
        assert rows_read(plan, "jobs") == 7 and rows_read(plan, "job_attempts") == 0, plan
