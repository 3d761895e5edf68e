from __future__ import annotations

import asyncio
import contextlib
import gzip
import tracemalloc
import zlib
from collections.abc import AsyncIterator

import pytest

from crawlfleet.worker.pipeline.decoding import CorruptEncoding, Inflater, decoded, inflaters
from tests.site import compression_bomb

TEXT = b"".join(b"<p>paragraph %d</p>" % n for n in range(5_000))


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def decode_all(data: bytes, content_encoding: str, *, chunk: int = 4096, step: int = 1024) -> bytes:
    pieces = [piece async for piece in decoded(chunks(data, chunk), inflaters(content_encoding), step=step)]
    assert all(len(piece) <= step for piece in pieces) or not inflaters(content_encoding)
    return b"".join(pieces)


@pytest.mark.parametrize(
    ("content_encoding", "body"),
    [
        ("gzip", gzip.compress(TEXT)),
        ("x-gzip", gzip.compress(TEXT)),
        ("GZIP", gzip.compress(TEXT)),
        ("deflate", zlib.compress(TEXT)),
        ("deflate", raw_deflate(TEXT)),
        ("deflate, gzip", gzip.compress(zlib.compress(TEXT))),
        ("gzip, identity", gzip.compress(TEXT)),
        ("", TEXT),
    ],
)
@pytest.mark.parametrize("chunk", [1, 7, 65536])
async def test_bodies_decode_whatever_the_chunking(content_encoding: str, body: bytes, chunk: int) -> None:
    assert await decode_all(body, content_encoding, chunk=chunk) == TEXT


@pytest.mark.parametrize("chunk", [1, 3, 65536])
async def test_gzip_members_are_read_in_turn(chunk: int) -> None:
    body = gzip.compress(TEXT[:1000]) + gzip.compress(b"") + gzip.compress(TEXT[1000:])
    assert await decode_all(body, "gzip", chunk=chunk) == TEXT


@pytest.mark.parametrize(
    ("content_encoding", "body"),
    [("gzip", gzip.compress(TEXT) + b"\x00trailing junk"), ("deflate", zlib.compress(TEXT) + b"junk")],
)
async def test_bytes_after_the_end_are_ignored(content_encoding: str, body: bytes) -> None:
    assert await decode_all(body, content_encoding) == TEXT


@pytest.mark.parametrize(
    ("content_encoding", "body"),
    [("gzip", b"\x1f\x8b\x08\x00" + b"\xff" * 64), ("gzip", b"plain text, not gzip"), ("deflate", b"\xff" * 64)],
)
async def test_damaged_bodies_raise(content_encoding: str, body: bytes) -> None:
    with pytest.raises(CorruptEncoding):
        await decode_all(body, content_encoding)


def test_each_read_is_bounded_however_much_one_feed_holds() -> None:
    inflater = Inflater("gzip")
    inflater.feed(compression_bomb(64 * 1024 * 1024))  # the whole bomb in one network chunk
    sizes = [len(inflater.read(4096)) for _ in range(100)]
    assert sizes == [4096] * 100


@pytest.mark.parametrize(
    ("content_encoding", "layers"),
    [
        ("identity", 0),
        ("", 0),
        ("gzip", 1),
        ("deflate, gzip", 2),
        ("br", 0),
        ("gzip, br", 0),  # br was applied last: nothing under it can be reached
        ("br, gzip", 1),
    ],
)
def test_layers_stop_at_a_coding_not_decoded(content_encoding: str, layers: int) -> None:
    assert len(inflaters(content_encoding)) == layers


async def test_other_tasks_run_between_steps() -> None:
    turns = 0
    stopping = asyncio.Event()

    async def other_job() -> None:
        nonlocal turns
        while not stopping.is_set():
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other_job())
    await asyncio.sleep(0)
    # One network chunk holding 64 MiB: nothing awaits the network between its steps.
    stream = decoded(chunks(compression_bomb(64 * 1024 * 1024), 1 << 20), [Inflater("gzip")], step=4096)
    async with contextlib.aclosing(stream):
        steps = 0
        async for _ in stream:
            steps += 1
            if steps == 100:
                break
    stopping.set()
    await task
    assert turns >= 99


@pytest.mark.parametrize("header", [b"\x78\x9c", b""], ids=["zlib", "raw"])
def test_input_that_inflates_to_nothing_is_not_held(header: bytes) -> None:
    empty_blocks = b"\x00\x00\x00\xff\xff" * 13_107  # non-final stored blocks of no bytes, 64 KiB
    inflater = Inflater("deflate")
    tracemalloc.start()
    try:
        inflater.feed(header)
        for _ in range(256):  # 16 MiB in, nothing out
            inflater.feed(empty_blocks)
            assert inflater.read(4096) == b""
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024
