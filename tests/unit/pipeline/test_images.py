"""Image checks, thumbnails and hashes on real images made here with Pillow; the pool on real processes."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import pickle
import struct
import zlib
from typing import Any

import pytest
from PIL import Image, ImageDraw

from crawlfleet.worker.pipeline.images import (
    ImageError,
    ImageOptions,
    ImageProcessor,
    ProcessedImage,
    hamming_distance,
    process_image,
    sniff_format,
)

DEFAULTS = ImageOptions()


def encode(img: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **params)
    return out.getvalue()


def scene(width: int, height: int) -> Image.Image:
    """A picture with large shapes and a gradient, drawn in proportion to its size."""
    img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(img)
    draw.ellipse((width * 0.1, height * 0.1, width * 0.5, height * 0.6), fill=(200, 30, 30))
    draw.rectangle((width * 0.6, height * 0.5, width * 0.9, height * 0.9), fill=(20, 40, 220))
    return img


def other_scene(width: int, height: int) -> Image.Image:
    """A different picture: vertical stripes of alternating brightness."""
    img = Image.new("RGB", (width, height), (240, 240, 240))
    draw = ImageDraw.Draw(img)
    stripe = width // 12
    for i in range(0, 12, 2):
        draw.rectangle((i * stripe, 0, (i + 1) * stripe - 1, height), fill=(10, 10, 10))
    return img


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height; its pixel data is never there."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def rejected(data: bytes, options: ImageOptions = DEFAULTS) -> str:
    with pytest.raises(ImageError) as info:
        process_image(data, options)
    return info.value.error_type


def assert_thumbnails_decode(result: ProcessedImage, fmt: str = "WEBP") -> None:
    for thumb in result.thumbnails:
        assert thumb.format == fmt
        assert thumb.sha256 == hashlib.sha256(thumb.data).hexdigest()
        img = decode(thumb.data)
        assert img.format == fmt
        assert img.size == (thumb.width, thumb.height)
        assert max(img.size) == min(thumb.max_side, max(result.width, result.height))


# -- magic bytes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xd8\xff\xe0rest", "JPEG"),
        (b"\x89PNG\r\n\x1a\nrest", "PNG"),
        (b"GIF87a..", "GIF"),
        (b"GIF89a..", "GIF"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "WEBP"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", None),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
        (b"BM\x00\x00", None),
        (b"", None),
    ],
)
def test_sniff_format(data: bytes, expected: str | None) -> None:
    assert sniff_format(data) == expected


# -- formats -------------------------------------------------------------------------------------


def test_jpeg_is_measured_hashed_and_thumbnailed_to_webp_by_default() -> None:
    data = encode(scene(800, 600), "JPEG", quality=90)
    result = process_image(data, DEFAULTS)
    assert result.format == "JPEG"
    assert (result.width, result.height) == (800, 600)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.byte_size == len(data)
    assert len(result.perceptual_hash) == 16
    assert result.perceptual_hash == result.perceptual_hash.lower()
    assert [(t.max_side, t.width, t.height) for t in result.thumbnails] == [(512, 512, 384), (128, 128, 96)]
    assert_thumbnails_decode(result)


def test_png_with_alpha_keeps_alpha_in_webp() -> None:
    img = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    ImageDraw.Draw(img).rectangle((50, 50, 250, 150), fill=(255, 0, 0, 255))
    result = process_image(encode(img, "PNG"), DEFAULTS)
    assert (result.format, result.width, result.height) == ("PNG", 300, 200)
    assert_thumbnails_decode(result)
    thumb = decode(result.thumbnails[0].data).convert("RGBA")
    assert thumb.getpixel((0, 0))[3] == 0  # type: ignore[index]
    assert thumb.getpixel((150, 100))[3] == 255  # type: ignore[index]


def test_alpha_is_flattened_on_white_for_jpeg_thumbnails() -> None:
    img = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    result = process_image(encode(img, "PNG"), ImageOptions(thumbnail_format="JPEG"))
    assert_thumbnails_decode(result, "JPEG")
    thumb = decode(result.thumbnails[0].data)
    assert thumb.mode == "RGB"
    assert min(thumb.getpixel((10, 10))) > 245  # type: ignore[arg-type]


def test_png_thumbnails() -> None:
    result = process_image(encode(scene(300, 200), "PNG"), ImageOptions(thumbnail_format="PNG"))
    assert_thumbnails_decode(result, "PNG")


def test_webp_input() -> None:
    data = encode(scene(640, 480), "WEBP", quality=85)
    result = process_image(data, DEFAULTS)
    assert (result.format, result.width, result.height) == ("WEBP", 640, 480)
    assert_thumbnails_decode(result)


def test_animated_gif_uses_the_first_frame() -> None:
    frames = [Image.new("RGB", (200, 100), (255, 0, 0)), Image.new("RGB", (200, 100), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2  # type: ignore[attr-defined]
    result = process_image(data, DEFAULTS)
    assert (result.format, result.width, result.height) == ("GIF", 200, 100)
    assert_thumbnails_decode(result)
    red, _green, blue = decode(result.thumbnails[-1].data).convert("RGB").getpixel((50, 25))  # type: ignore[misc]
    assert red > 200 and blue < 50


def test_cmyk_jpeg_gives_rgb_thumbnails() -> None:
    result = process_image(encode(scene(300, 200).convert("CMYK"), "JPEG"), DEFAULTS)
    assert (result.width, result.height) == (300, 200)
    assert_thumbnails_decode(result)
    assert decode(result.thumbnails[0].data).mode == "RGB"


def test_sixteen_bit_grayscale_is_scaled_not_clipped() -> None:
    data = encode(Image.new("I;16", (64, 64), 32768), "PNG")
    result = process_image(data, ImageOptions(thumbnail_format="PNG"))
    value = decode(result.thumbnails[0].data).convert("L").getpixel((5, 5))
    assert value == 128


# -- EXIF orientation and draft mode ---------------------------------------------------------------


def exif_oriented_jpeg(width: int, height: int, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(scene(width, height), "JPEG", exif=exif.tobytes())


def test_exif_orientation_6_reports_and_thumbnails_portrait() -> None:
    result = process_image(exif_oriented_jpeg(200, 100, 6), DEFAULTS)
    assert (result.width, result.height) == (100, 200)
    assert [(t.width, t.height) for t in result.thumbnails] == [(100, 200), (64, 128)]
    assert_thumbnails_decode(result)
    assert "exif" not in decode(result.thumbnails[0].data).info


def test_draft_decoded_jpeg_reports_the_full_oriented_size() -> None:
    data = exif_oriented_jpeg(2400, 1200, 6)
    result = process_image(data, ImageOptions(thumbnail_sizes=(128,)))
    assert (result.width, result.height) == (1200, 2400)
    assert [(t.width, t.height) for t in result.thumbnails] == [(64, 128)]


# -- thumbnails --------------------------------------------------------------------------------------


def test_thumbnails_never_upscale_and_sizes_are_deduplicated() -> None:
    result = process_image(encode(scene(100, 50), "PNG"), ImageOptions(thumbnail_sizes=(512, 128, 512, 64)))
    assert [(t.max_side, t.width, t.height) for t in result.thumbnails] == [
        (512, 100, 50),
        (128, 100, 50),
        (64, 64, 32),
    ]
    assert result.thumbnails[0].data == result.thumbnails[1].data
    assert_thumbnails_decode(result)


def test_no_thumbnail_sizes_still_hashes() -> None:
    result = process_image(encode(scene(1600, 1200), "JPEG"), ImageOptions(thumbnail_sizes=()))
    assert result.thumbnails == ()
    assert (result.width, result.height) == (1600, 1200)
    assert len(result.perceptual_hash) == 16


@pytest.mark.parametrize(
    "overrides",
    [
        {"thumbnail_sizes": (0,)},
        {"thumbnail_format": "GIF"},
        {"thumbnail_quality": 0},
        {"max_pixels": 0},
        {"max_bytes": 0},
    ],
)
def test_options_are_validated(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ImageOptions(**overrides)


# -- perceptual hash --------------------------------------------------------------------------------


def test_dhash_is_stable_across_sizes_and_formats() -> None:
    large = process_image(encode(scene(1200, 900), "JPEG", quality=92), DEFAULTS)
    small = process_image(encode(scene(300, 225), "JPEG", quality=60), DEFAULTS)
    as_webp = process_image(encode(scene(600, 450), "WEBP", quality=50), DEFAULTS)
    assert hamming_distance(large.perceptual_hash, small.perceptual_hash) <= 6
    assert hamming_distance(large.perceptual_hash, as_webp.perceptual_hash) <= 6
    assert large.sha256 != small.sha256


def test_dhash_tells_different_pictures_apart() -> None:
    first = process_image(encode(scene(800, 600), "JPEG"), DEFAULTS)
    second = process_image(encode(other_scene(800, 600), "JPEG"), DEFAULTS)
    assert hamming_distance(first.perceptual_hash, second.perceptual_hash) >= 20


def test_hamming_distance() -> None:
    assert hamming_distance("0000000000000000", "ffffffffffffffff") == 64
    assert hamming_distance("00000000000000f0", "0000000000000010") == 3


# -- refusals ----------------------------------------------------------------------------------------


def test_too_large_is_refused_before_anything_else() -> None:
    data = encode(scene(100, 100), "PNG")
    assert rejected(data, ImageOptions(max_bytes=len(data) - 1)) == "too_large"
    assert process_image(data, ImageOptions(max_bytes=len(data))).byte_size == len(data)


@pytest.mark.parametrize(
    "data",
    [
        b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>",
        b"just some text",
        b"",
        encode(Image.new("RGB", (10, 10)), "BMP"),
        encode(Image.new("RGB", (10, 10)), "TIFF"),
    ],
)
def test_unsupported_formats_are_refused(data: bytes) -> None:
    assert rejected(data) == "unsupported_format"


def test_truncated_jpeg_is_corrupt() -> None:
    data = encode(scene(400, 300), "JPEG")
    assert rejected(data[: len(data) // 2]) == "corrupt_image"


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        b"\xff\xd8\xff" + b"\x00" * 500,
        b"GIF89a" + b"\xff" * 20,
        b"RIFF\x20\x00\x00\x00WEBPVP8 " + b"\x01" * 40,
    ],
)
def test_garbage_after_valid_magic_bytes_is_corrupt(data: bytes) -> None:
    assert rejected(data) == "corrupt_image"


def test_decompression_bomb_is_refused_from_the_header() -> None:
    bomb = png_declaring(20000, 20000)
    assert len(bomb) < 200
    error_type = rejected(bomb)
    assert error_type == "decompression_bomb"


def test_bomb_past_pillows_own_hard_limit_is_also_a_decompression_bomb() -> None:
    options = ImageOptions(max_pixels=1_234_567)
    with pytest.raises(ImageError) as info:
        process_image(png_declaring(100_000, 100_000), options)
    assert info.value.error_type == "decompression_bomb"
    # The message quotes the configured cap, not Pillow's internal limit.
    assert "10000000000 pixels is over the cap of 1234567 pixels" in str(info.value)
    assert str(Image.MAX_IMAGE_PIXELS) not in str(info.value)


def test_pixel_cap_is_inclusive() -> None:
    data = encode(scene(100, 100), "PNG")
    assert process_image(data, ImageOptions(max_pixels=10_000)).width == 100
    assert rejected(data, ImageOptions(max_pixels=9_999)) == "decompression_bomb"


def test_image_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(ImageError("corrupt_image", "bad bytes")))
    assert (error.error_type, error.message, str(error)) == ("corrupt_image", "bad bytes", "corrupt_image: bad bytes")


# -- the process pool -------------------------------------------------------------------------------


async def test_processor_runs_images_in_the_pool_and_raises_image_errors() -> None:
    data = encode(scene(400, 300), "JPEG")
    async with ImageProcessor(DEFAULTS, workers=1) as processor:
        assert processor.workers == 1
        result = await processor.process(data)
        assert result == process_image(data, DEFAULTS)
        with pytest.raises(ImageError) as info:
            await processor.process(png_declaring(20000, 20000))
        assert info.value.error_type == "decompression_bomb"
    with pytest.raises(RuntimeError):
        await processor.process(data)
    await processor.aclose()  # twice is fine


async def test_processor_replaces_a_crashed_pool() -> None:
    data = encode(scene(200, 100), "PNG")
    async with ImageProcessor(DEFAULTS, workers=1) as processor:
        await processor.process(data)
        children = multiprocessing.active_children()
        assert children
        for child in children:
            child.kill()
            child.join()
        with pytest.raises(ImageError) as info:
            await processor.process(data)
        assert info.value.error_type == "processing_crashed"
        assert (await processor.process(data)).width == 200
