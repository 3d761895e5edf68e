from __future__ import annotations

from crawlfleet.worker.pipeline.image_cache import ProcessedImageCache
from crawlfleet.worker.pipeline.images import ProcessedImage, ThumbnailData


def processed(tag: str, size: int) -> ProcessedImage:
    thumb = ThumbnailData(max_side=128, width=1, height=1, format="WEBP", sha256=tag * 64, data=b"x" * size)
    return ProcessedImage(
        sha256=tag * 64, format="PNG", width=1, height=1, byte_size=1, perceptual_hash="0" * 16, thumbnails=(thumb,)
    )


def test_hit_after_put_and_miss_before() -> None:
    cache = ProcessedImageCache(max_bytes=1000)
    key = cache.key(b"picture")
    assert cache.get(key) is None
    cache.put(key, processed("a", 10))
    assert cache.get(key) == processed("a", 10) and cache.hits == 1


def test_evicts_least_recently_used_past_the_byte_bound() -> None:
    cache = ProcessedImageCache(max_bytes=250)
    for tag in "abc":
        cache.put(tag, processed(tag, 100))
    assert cache.get("a") is None  # evicted: 300 bytes > 250
    assert cache.get("b") is not None and cache.get("c") is not None
    cache.put("d", processed("d", 100))
    assert len(cache) == 2 and cache.get("d") is not None


def test_an_entry_larger_than_the_bound_is_not_kept() -> None:
    cache = ProcessedImageCache(max_bytes=50)
    cache.put("big", processed("e", 100))
    assert len(cache) == 0
