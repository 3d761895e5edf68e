"""Content-Encoding decoding with a hard bound on the bytes each step produces.

httpx inflates a whole network chunk at once: 64 KiB of gzip can become 64 MiB before a cap can look
at it, and a bomb of a thousand such chunks ties up memory and the event loop. Here the raw stream is
inflated at most `step` bytes at a time (``zlib``'s ``max_length``), lazily, layer by layer, so the
reader sees the decoded bytes as they are produced and can stop at its cap having inflated at most
one step past it, whatever the compression ratio.

Decoded: gzip (also ``x-gzip`` and several members laid end to end), deflate (zlib-wrapped, or raw as
some servers send it), and stacks of them. Only these are asked for (``ACCEPT_ENCODING``): brotli and
zstd are not, since their decoders here cannot bound a step's output. A coding we do not know is
left as it came (and so is every coding applied before it), as httpx does; the cap then counts those
bytes.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterator

ACCEPT_ENCODING = "gzip, deflate"
DECODE_STEP = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_CODINGS = frozenset({"gzip", "x-gzip"})
_CODINGS = _GZIP_CODINGS | {"deflate"}


class CorruptEncoding(Exception):
    """The body is not valid for its declared content coding (truncated or damaged in transit)."""


class Inflater:
    """One gzip or deflate layer: input fed in, output pulled out at most `limit` bytes at a time.

    Holds at most the input of one `feed` that it has not inflated yet, whatever the stream.
    """

    def __init__(self, coding: str) -> None:
        if coding not in _CODINGS:
            raise ValueError(f"not a coding this decodes: {coding!r}")
        self._gzip = coding in _GZIP_CODINGS
        self._inflater = self._new()
        self._pending = b""  # fed input the inflater has not consumed yet
        # "deflate" is zlib-wrapped, or raw from some servers: the first two bytes tell which.
        self._wrapping_known = self._gzip
        self._member_ended = False
        self._finished = False  # the stream ended; anything after it is ignored, as browsers do

    def feed(self, data: bytes) -> None:
        if not self._finished:
            self._pending += data

    def read(self, limit: int) -> bytes:
        """Up to `limit` decoded bytes; b"" when more input is needed (or the stream has ended)."""
        if not self._wrapping_known:
            if len(self._pending) < 2:
                return b""
            self._wrapping_known = True
            if not _is_zlib_header(self._pending):
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        while not self._finished:
            if self._member_ended and not self._next_member():
                return b""
            try:
                out = self._inflater.decompress(self._pending, limit)
            except zlib.error as exc:
                raise CorruptEncoding(f"invalid {'gzip' if self._gzip else 'deflate'} data: {exc}") from exc
            if self._inflater.eof:
                self._member_ended = True
                self._pending = self._inflater.unused_data
            else:
                self._pending = self._inflater.unconsumed_tail
            if out or not self._member_ended:
                return out
        return b""

    def _next_member(self) -> bool:
        """After a gzip member, start on the next one if one follows; False to wait or to stop."""
        if self._gzip and self._pending[:2] == _GZIP_MAGIC:
            self._inflater = self._new()
            self._member_ended = False
            return True
        if not (self._gzip and _GZIP_MAGIC.startswith(self._pending)):  # not even the start of one
            self._finished, self._pending = True, b""
        return False

    def _new(self) -> zlib._Decompress:
        return zlib.decompressobj(zlib.MAX_WBITS | 16 if self._gzip else zlib.MAX_WBITS)


def _is_zlib_header(head: bytes) -> bool:
    """RFC 1950: deflate with a window of at most 32 KiB, and a check value making it a multiple of 31."""
    cmf, flags = head[0], head[1]
    return cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf << 8 | flags) % 31 == 0


def inflaters(content_encoding: str) -> list[Inflater]:
    """The layers to undo for a Content-Encoding value, outermost (last applied) first.

    Peeling stops at a coding this does not decode: what lies under it is out of reach.
    """
    layers: list[Inflater] = []
    for coding in reversed([c.strip().lower() for c in content_encoding.split(",")]):
        if coding in ("", "identity"):
            continue
        if coding not in _CODINGS:
            break
        layers.append(Inflater(coding))
    return layers


async def decoded(
    raw: AsyncIterator[bytes], layers: list[Inflater], *, step: int = DECODE_STEP
) -> AsyncGenerator[bytes, None]:
    """The decoded body of `raw`, in pieces of at most `step` bytes (raw pieces when there are no layers).

    Lazy: each piece is inflated only when asked for, so a reader that stops has inflated at most one
    step per layer past what it took.
    """
    async for chunk in raw:
        for piece in _through(layers, chunk, step):
            yield piece
            if layers:
                # Inflating is CPU work (a step of a bomb takes about a millisecond): other jobs get
                # the event loop between steps, not only between network reads.
                await asyncio.sleep(0)


def _through(layers: list[Inflater], data: bytes, step: int) -> Iterator[bytes]:
    if not layers:
        if data:
            yield data
        return
    outer, inner = layers[0], layers[1:]
    outer.feed(data)
    while piece := outer.read(step):
        yield from _through(inner, piece, step)
