"""Image processing: validate downloaded bytes, then measure, hash and thumbnail them with Pillow.

``process_image`` is a pure function of bytes and options, so it can run in another process; the
``ImageProcessor`` runs it in a process pool so decoding never blocks the event loop (heartbeats keep
their turn). Checks run cheapest first and before any pixel is decoded: byte size, magic bytes, the
format Pillow detects, then the pixel count from the header. Memory per call is bounded by
``max_pixels``; each pool process works on one image at a time.

Hashes: ``sha256`` of the input bytes is for exact dedupe; ``perceptual_hash`` is a 64-bit dHash for
near-duplicates. The same picture re-encoded or resized typically lands within a few bits (Hamming
distance up to about 6); unrelated pictures are around 32 bits apart. See ``hamming_distance``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import multiprocessing
import os
import re
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from PIL import ExifTags, Image, ImageOps

from crawlfleet.worker.errors import WorkerError
from crawlfleet.worker.pipeline.settings import (
    DEFAULT_IMAGE_MAX_PIXELS,
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_THUMBNAIL_FORMAT,
    DEFAULT_THUMBNAIL_SIZES,
    THUMBNAIL_FORMATS,
)

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
DEFAULT_THUMBNAIL_QUALITY = 80
# libwebp's effort (0-6, Pillow's default 4). On product photos at 512 and 128 pixels, 2 encodes
# in 6 ms what 4 encodes in 14 ms, for 2.6% more bytes: encoding was half of an image's CPU.
WEBP_METHOD = 2

# Without thumbnails a JPEG is still drafted down, but kept large enough for a stable dHash.
_HASH_DRAFT_SIDE = 256
# EXIF orientations that rotate by 90 degrees: the displayed width is the stored height.
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_JPEG_BACKGROUND = (255, 255, 255)
_PILLOW_BOMB_SIZE = re.compile(r"Image size \((\d+) pixels\)")

_MAGIC_PNG = b"\x89PNG\r\n\x1a\n"
_MAGIC_JPEG = b"\xff\xd8\xff"
_MAGIC_GIF = (b"GIF87a", b"GIF89a")


class ImageError(WorkerError):
    """An image was refused or could not be processed; ``error_type`` says why.

    ``unsupported_format``, ``too_large``, ``decompression_bomb`` and ``corrupt_image`` are about the
    bytes themselves: fetching the same URL again will not help. ``processing_crashed`` means a pool
    process died (e.g. killed for memory); the same bytes may succeed on another try.
    """

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message

    def __reduce__(self) -> tuple[type[ImageError], tuple[str, str]]:
        # Raised inside pool processes: the exception must survive pickling with both fields.
        return type(self), (self.error_type, self.message)


@dataclass(frozen=True, kw_only=True)
class ThumbnailData:
    """One encoded thumbnail; ``max_side`` is the configured bound it was made for."""

    max_side: int
    width: int
    height: int
    format: str
    sha256: str
    data: bytes


@dataclass(frozen=True, kw_only=True)
class ProcessedImage:
    """What the pipeline keeps of one image."""

    sha256: str
    format: str
    width: int
    height: int
    byte_size: int
    perceptual_hash: str
    thumbnails: tuple[ThumbnailData, ...]


@dataclass(frozen=True, kw_only=True)
class ImageOptions:
    """How images are checked and thumbnailed; sizes bound the longer side and never upscale."""

    thumbnail_sizes: tuple[int, ...] = DEFAULT_THUMBNAIL_SIZES
    thumbnail_format: str = DEFAULT_THUMBNAIL_FORMAT
    thumbnail_quality: int = DEFAULT_THUMBNAIL_QUALITY
    max_pixels: int = DEFAULT_IMAGE_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES

    def __post_init__(self) -> None:
        if any(size < 1 for size in self.thumbnail_sizes):
            raise ValueError(f"thumbnail_sizes must be positive, got {self.thumbnail_sizes}")
        if self.thumbnail_format not in THUMBNAIL_FORMATS:
            raise ValueError(f"thumbnail_format must be one of {THUMBNAIL_FORMATS}, got {self.thumbnail_format!r}")
        if not 1 <= self.thumbnail_quality <= 100:
            raise ValueError(f"thumbnail_quality must be within 1..100, got {self.thumbnail_quality}")
        if self.max_pixels < 1 or self.max_bytes < 1:
            raise ValueError("max_pixels and max_bytes must be positive")


def sniff_format(data: bytes) -> str | None:
    """The allowed format the magic bytes announce, or ``None``."""
    if data.startswith(_MAGIC_JPEG):
        return "JPEG"
    if data.startswith(_MAGIC_PNG):
        return "PNG"
    if data[:6] in _MAGIC_GIF:
        return "GIF"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def hamming_distance(hash_a: str, hash_b: str) -> int:
    """How many of the 64 bits two perceptual hashes differ in (0 means identical pictures)."""
    return (int(hash_a, 16) ^ int(hash_b, 16)).bit_count()


def process_image(data: bytes, options: ImageOptions) -> ProcessedImage:
    """Checks, measures, hashes and thumbnails one image; raises ``ImageError``.

    Pure and top-level, so a process pool can run it. Nothing is decoded before the size, the magic
    bytes, the detected format and the declared pixel count have passed.
    """
    if len(data) > options.max_bytes:
        raise ImageError("too_large", f"{len(data)} bytes is over the cap of {options.max_bytes}")
    sniffed = sniff_format(data)
    if sniffed is None:
        raise ImageError("unsupported_format", f"magic bytes {data[:12].hex()} are none of {ALLOWED_FORMATS}")

    with warnings.catch_warnings():
        # The pixel cap below is ours; Pillow's global warning would only duplicate it. Pillow still
        # raises DecompressionBombError past twice its own global limit, which is mapped below.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=(sniffed,)) as img:
                return _process_open_image(img, data, sniffed, options)
        except ImageError:
            raise
        except Image.DecompressionBombError as exc:
            # Pillow's message quotes its own global limit; the operator configured ours.
            declared = _PILLOW_BOMB_SIZE.search(str(exc))
            size = f"{int(declared.group(1))} pixels" if declared else "the declared size"
            raise ImageError("decompression_bomb", f"{size} is over the cap of {options.max_pixels} pixels") from exc
        except Exception as exc:
            # Truncated files fail here too: ImageFile.LOAD_TRUNCATED_IMAGES is left at False.
            raise ImageError("corrupt_image", f"{type(exc).__name__}: {exc}") from exc


def _process_open_image(img: Image.Image, data: bytes, sniffed: str, options: ImageOptions) -> ProcessedImage:
    if img.format != sniffed:
        raise ImageError("unsupported_format", f"magic bytes say {sniffed}, Pillow detected {img.format}")
    stored_width, stored_height = img.size
    if stored_width * stored_height > options.max_pixels:
        raise ImageError(
            "decompression_bomb",
            f"{stored_width}x{stored_height} is over the cap of {options.max_pixels} pixels",
        )
    if sniffed == "JPEG":
        # Decode at 1/2, 1/4 or 1/8 scale when that still covers the largest thumbnail.
        side = max(options.thumbnail_sizes, default=_HASH_DRAFT_SIDE)
        img.draft("RGB", (side, side))
    img.load()  # animated GIF and WebP: the first frame

    orientation = _orientation(img)
    width, height = (
        (stored_height, stored_width) if orientation in _SWAPPING_ORIENTATIONS else (stored_width, stored_height)
    )
    upright = ImageOps.exif_transpose(img) if orientation != 1 else img
    base = _normalize_mode(upright, options.thumbnail_format)

    return ProcessedImage(
        sha256=hashlib.sha256(data).hexdigest(),
        format=sniffed,
        width=width,
        height=height,
        byte_size=len(data),
        perceptual_hash=_dhash(base),
        thumbnails=_thumbnails(base, options, icc_profile=_icc_profile(img)),
    )


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        return 1  # unreadable EXIF: show the pixels as stored rather than refuse the image
    return value if isinstance(value, int) else 1


def _normalize_mode(img: Image.Image, thumbnail_format: str) -> Image.Image:
    """RGB, or RGBA when the image has transparency and the thumbnail format can keep it."""
    if img.mode.startswith("I;16") or img.mode == "I":
        # 16-bit grayscale: scale to 8 bits; a plain convert would clip everything above 255 to white.
        img = img.convert("I").point(lambda value: value / 256).convert("L")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if not has_alpha:
        return img if img.mode == "RGB" else img.convert("RGB")
    rgba = img if img.mode == "RGBA" else img.convert("RGBA")
    if thumbnail_format != "JPEG":
        return rgba
    flat = Image.new("RGB", rgba.size, _JPEG_BACKGROUND)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


def _icc_profile(img: Image.Image) -> bytes | None:
    """The source's colour profile, kept only while the pixels stay in its colour space."""
    profile = img.info.get("icc_profile")
    if isinstance(profile, bytes) and profile and img.mode in ("RGB", "RGBA", "P"):
        return profile
    return None  # a CMYK or grayscale profile would be wrong on the converted RGB pixels


def _dhash(img: Image.Image) -> str:
    """64-bit difference hash: is each pixel of a 9x8 grayscale reduction darker than its right neighbour."""
    if img.mode == "RGBA":
        flat = Image.new("RGB", img.size, _JPEG_BACKGROUND)
        flat.paste(img, mask=img.getchannel("A"))
        img = flat
    small = img.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    pixels = small.tobytes()  # 72 grayscale bytes, row by row
    value = 0
    for row in range(8):
        for col in range(8):
            left, right = pixels[row * 9 + col], pixels[row * 9 + col + 1]
            value = (value << 1) | (1 if left < right else 0)
    return f"{value:016x}"


def _thumbnails(base: Image.Image, options: ImageOptions, *, icc_profile: bytes | None) -> tuple[ThumbnailData, ...]:
    """Largest first; each from the one before, so the full-size image is resampled only once."""
    result: list[ThumbnailData] = []
    current = base
    for max_side in sorted(set(options.thumbnail_sizes), reverse=True):
        if max(current.size) > max_side:
            current = current.copy()
            current.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        previous = result[-1] if result else None
        if previous is not None and (previous.width, previous.height) == current.size:
            # Both bounds exceed the image: same pixels, so skip encoding them again.
            encoded = previous.data
        else:
            encoded = _encode(current, options, icc_profile)
        result.append(
            ThumbnailData(
                max_side=max_side,
                width=current.width,
                height=current.height,
                format=options.thumbnail_format,
                sha256=hashlib.sha256(encoded).hexdigest(),
                data=encoded,
            )
        )
    return tuple(result)


def _encode(img: Image.Image, options: ImageOptions, icc_profile: bytes | None) -> bytes:
    params: dict[str, Any] = {}
    if icc_profile is not None:
        params["icc_profile"] = icc_profile
    if options.thumbnail_format in ("WEBP", "JPEG"):
        params["quality"] = options.thumbnail_quality
    if options.thumbnail_format == "WEBP":
        params["method"] = WEBP_METHOD
    # Thumbnails are upright already: no EXIF (so no orientation) is written.
    clean = img.copy()
    clean.info = {}
    out = io.BytesIO()
    clean.save(out, format=options.thumbnail_format, **params)
    return out.getvalue()


# How often a pool process looks for its parent.
PARENT_CHECK_SECONDS = 1.0


def _leave_with_parent(parent: int) -> None:
    """Pool initializer. A worker killed with SIGKILL cannot stop its pool, and a pool process would
    wait on its call queue forever (it holds the queue's write end itself): it leaves on its own
    once its parent is gone instead."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="leave-with-parent", daemon=True).start()


def default_workers() -> int:
    """The cores this process may run on (CPU affinity, e.g. in a container), at least one."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class ImageProcessor:
    """Runs ``process_image`` in a process pool sized to the cores; an async API for the pipeline.

    The pool starts on the first image, with ``spawn``: forking a process that runs gRPC threads is
    unsafe. A cancelled call still lets its pool process finish that one image (bounded by the pixel
    cap). Use as an async context manager, or call ``aclose``.
    """

    def __init__(self, options: ImageOptions, *, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self._options = options
        self._workers = workers or default_workers()
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    @property
    def workers(self) -> int:
        """How many processes the pool runs."""
        return self._workers

    async def process(self, data: bytes) -> ProcessedImage:
        """``process_image`` in the pool; raises ``ImageError`` (``processing_crashed`` if a process died)."""
        if self._closed:
            raise RuntimeError("ImageProcessor is closed")
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_leave_with_parent,
                initargs=(os.getpid(),),
            )
        pool = self._pool
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, process_image, data, self._options)
        except BrokenProcessPool as exc:
            # Concurrent calls all see the same broken pool: the first drops it, the next call starts anew.
            if self._pool is pool:
                self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise ImageError("processing_crashed", f"an image process died: {exc}") from exc

    async def aclose(self) -> None:
        """Cancels queued work, waits for running images, stops the processes. Safe to call twice."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def __aenter__(self) -> ImageProcessor:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
