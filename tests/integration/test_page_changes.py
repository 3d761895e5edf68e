"""What the coordinator makes of declared fields, 304s and content hashes: the pages it stores, the
results it refuses, and the results that changed since a time (ListResults, the client library and
`crawlfleet export`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json

import asyncpg
import grpc
import pytest

from crawlfleet.cli.main import main
from crawlfleet.client import AsyncClient, Field, InvalidArgument, ScrapeJob, field_values
from crawlfleet.v1 import admin_pb2, jobs_pb2
from crawlfleet.v1 import job_queue_pb2 as pb
from tests.conftest import RunningCoordinator
from tests.helpers import error_info, lease_request

SHOP = "https://shop.example/"
TEAPOT, MUG, BLOG = SHOP + "teapot", SHOP + "mug", "https://blog.example/post"
HASH_1, HASH_2, HASH_3 = ("1" * 64), ("2" * 64), ("3" * 64)
DECLARED = [
    jobs_pb2.FieldSpec(name="price", json_ld="offers.price"),
    jobs_pb2.FieldSpec(name="tags", css="li.tag", all=True),
    jobs_pb2.FieldSpec(name="sku", css=".sku"),
]


def page(url: str, content_sha256: str = "", **extra: object) -> jobs_pb2.JobResult:
    result = jobs_pb2.ScrapeResult(
        final_url=url,
        status_code=200,
        content_type="text/html",
        rendered_with=jobs_pb2.RENDER_MODE_HTTP,
        content_sha256=content_sha256,
        **extra,  # type: ignore[arg-type]
    )
    return jobs_pb2.JobResult(scrape=result)


def unchanged(url: str) -> jobs_pb2.JobResult:
    result = jobs_pb2.ScrapeResult(
        final_url=url, status_code=304, rendered_with=jobs_pb2.RENDER_MODE_HTTP, not_modified=True
    )
    result.headers["etag"] = '"v1"'
    return jobs_pb2.JobResult(scrape=result)


async def scraped(coord: RunningCoordinator, url: str, result: jobs_pb2.JobResult, key: str) -> int:
    """One job of `url` (its own, by idempotency key) completed with `result`."""
    spec = jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url=url, fields=DECLARED), idempotency_key=key)
    (enqueued,) = (await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[spec]))).jobs
    (job,) = (await coord.queue.Lease(lease_request(max_jobs=1))).jobs
    assert job.id == enqueued.id
    await coord.queue.Complete(
        pb.CompleteRequest(jobs=[pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=result)])
    )
    return job.id


async def changed(coord: RunningCoordinator, since: dt.datetime, prefix: str = "", page_size: int = 100) -> list[int]:
    request = admin_pb2.ListResultsRequest(page_size=page_size, url_prefix=prefix)
    request.changed_since.FromDatetime(since)
    ids: list[int] = []
    while True:
        response = await coord.admin.ListResults(request)
        ids += [entry.job_id for entry in response.results]
        if not response.next_page_token:
            return ids
        request.page_token = response.next_page_token


async def database_now(db: asyncpg.Pool) -> dt.datetime:
    now: dt.datetime = await db.fetchval("SELECT clock_timestamp()")
    return now


async def test_pages_that_changed_since_a_time(coord: RunningCoordinator, db: asyncpg.Pool) -> None:
    start = await database_now(db)
    fields = [jobs_pb2.FieldValue(name="price", values=["19.5"]), jobs_pb2.FieldValue(name="tags", values=["a", "b"])]
    first = await scraped(coord, TEAPOT, page(TEAPOT, HASH_1, fields=fields), "teapot-1")
    mug = await scraped(coord, MUG, page(MUG, HASH_3), "mug-1")
    middle = await database_now(db)
    not_modified = await scraped(coord, TEAPOT, unchanged(TEAPOT), "teapot-2")
    same = await scraped(coord, TEAPOT, page(TEAPOT, HASH_1), "teapot-3")
    new = await scraped(coord, TEAPOT, page(TEAPOT, HASH_2), "teapot-4")
    blog = await scraped(coord, BLOG, page(BLOG, HASH_1), "blog-1")
    await scraped(coord, MUG, page(MUG, HASH_3), "mug-2")  # the mug again, unchanged

    # A 304 is a page that says so; a page fetched in full keeps its hash and fields.
    rows = {
        r["job_id"]: r
        for r in await db.fetch("SELECT job_id, status_code, not_modified, content_sha256, fields FROM pages")
    }
    assert (rows[not_modified]["status_code"], rows[not_modified]["not_modified"]) == (304, True)
    assert rows[not_modified]["content_sha256"] is None
    assert rows[first]["content_sha256"] == HASH_1 and not rows[first]["not_modified"]
    assert json.loads(rows[first]["fields"]) == {"price": ["19.5"], "tags": ["a", "b"]}

    # Each URL's first page changed; after it, only a new hash is a change (a 304 never is).
    assert await changed(coord, start) == [first, mug, new, blog]
    assert await changed(coord, middle) == [new, blog]  # the same hash as before the bound is no change
    assert await changed(coord, start, prefix=SHOP) == [first, mug, new]
    assert await changed(coord, start, prefix=TEAPOT, page_size=1) == [first, new]
    assert await changed(coord, await database_now(db)) == []

    # Without changed_since, the prefix alone narrows every result.
    listed = await coord.admin.ListResults(admin_pb2.ListResultsRequest(url_prefix=TEAPOT))
    assert [entry.job_id for entry in listed.results] == [first, not_modified, same, new]
    assert [field.name for field in listed.results[0].spec.scrape.fields] == ["price", "tags", "sku"]

    # The client library: the same filter, and the declared fields by name.
    async with AsyncClient(coord.address) as client:
        entries = [entry async for entry in client.iter_results(changed_since=middle, url_prefix=SHOP, page_size=1)]
        assert [entry.job_id for entry in entries] == [new]
        (entry,) = [entry async for entry in client.iter_results(url_prefix=TEAPOT, limit=1)]
        assert field_values(entry.spec, entry.result) == {"price": "19.5", "tags": ["a", "b"], "sku": None}

    # crawlfleet export --changed-since --url-prefix, with the fields object.
    out, err = io.StringIO(), io.StringIO()
    argv = ["--coordinator", coord.address, "export", "--changed-since", start.isoformat(), "--url-prefix", TEAPOT]
    code = await asyncio.to_thread(main, argv, stdin=io.StringIO(), stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["job_id"] for r in records] == [first, new]
    assert records[0]["fields"] == {"price": "19.5", "tags": ["a", "b"], "sku": None}
    assert records[1]["fields"] == {"price": None, "tags": [], "sku": None}
    assert records[1]["result"]["scrape"]["content_sha256"] == HASH_2

    # crawlfleet jobs show: the declared fields and the hash of a full fetch, "unchanged" for a 304.
    shown = {}
    for job_id in (first, not_modified):
        out = io.StringIO()
        argv = ["--coordinator", coord.address, "jobs", "show", str(job_id)]
        assert await asyncio.to_thread(main, argv, stdin=io.StringIO(), stdout=out, stderr=io.StringIO()) == 0
        shown[job_id] = out.getvalue()
    assert "field       price = 19.5" in shown[first] and "field       tags = 2 value(s): a; b" in shown[first]
    assert "field       sku = -" in shown[first] and f"sha256 {HASH_1}" in shown[first]
    assert "not modified" in shown[not_modified] and "field " not in shown[not_modified]


@pytest.mark.parametrize(
    ("result", "field", "message"),
    [
        (page(TEAPOT, "A" * 64), "scrape.content_sha256", "lower-case hex"),
        (page(TEAPOT, not_modified=True), "scrape.status_code", "must be 304"),
        (
            page(TEAPOT, fields=[jobs_pb2.FieldValue(name="a"), jobs_pb2.FieldValue(name="a")]),
            "scrape.fields[1].name",
            "appears twice",
        ),
        (page(TEAPOT, fields=[jobs_pb2.FieldValue(name="Bad")]), "scrape.fields[0].name", "not a field name"),
        (
            page(TEAPOT, fields=[jobs_pb2.FieldValue(name="a", values=["é" * 20_000])]),
            "scrape.fields[0].values[0]",
            "more than 32768",
        ),
        (
            page(TEAPOT, fields=[jobs_pb2.FieldValue(name=f"f{n}", values=["x" * 30_000] * 100) for n in range(2)]),
            "scrape.fields",
            "more than 4194304",
        ),
    ],
)
async def test_a_result_past_the_field_rules_is_refused_naming_the_field(
    coord: RunningCoordinator, result: jobs_pb2.JobResult, field: str, message: str
) -> None:
    (enqueued,) = (
        await coord.queue.Enqueue(pb.EnqueueRequest(jobs=[jobs_pb2.JobSpec(scrape=jobs_pb2.ScrapeSpec(url=TEAPOT))]))
    ).jobs
    (job,) = (await coord.queue.Lease(lease_request(max_jobs=1))).jobs
    done = pb.CompletedJob(job_id=job.id, lease_token=job.lease_token, result=result)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coord.queue.Complete(pb.CompleteRequest(jobs=[done]))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).metadata["field"] == f"jobs[0].result.{field}"
    assert message in (caught.value.details() or "")
    assert enqueued.id == job.id


async def test_enqueue_refuses_a_bad_selector_naming_the_field(coord: RunningCoordinator) -> None:
    job = ScrapeJob(
        url=TEAPOT,
        fields=[Field(name="title", css="h1"), Field(name="price", json_ld="offers.price"), Field(name="x", css="a >")],
        follow_selectors=[".products"],
        if_modified_since=dt.datetime(2015, 10, 21, 7, 28, tzinfo=dt.UTC),
    )
    async with AsyncClient(coord.address) as client:
        with pytest.raises(InvalidArgument) as caught:
            await client.enqueue_many([TEAPOT + "?ok", job])
        assert caught.value.field == "jobs[1].scrape.fields[2].css" and caught.value.job_index == 1
        good = job.to_proto()
        del good.scrape.fields[2]
        (enqueued,) = await client.enqueue_many([good])
        stored = await client.get_job(enqueued.id)
    assert stored.spec.scrape.if_modified_since == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert [f.WhichOneof("source") for f in stored.spec.scrape.fields] == ["css", "json_ld"]
