"""The worker's result budget stays inside the caps the coordinator enforces at Complete."""

from __future__ import annotations

import pytest

from crawlfleet.common import result_limits as caps
from crawlfleet.worker.pipeline import extract
from crawlfleet.worker.pipeline import settings as pipeline
from crawlfleet.worker.settings import WorkerSettings


def test_the_extraction_budget_is_inside_the_caps() -> None:
    assert extract.MAX_MAIN_TEXT_CHARS * 4 <= caps.MAX_MAIN_TEXT_BYTES  # 4 bytes per character at most
    assert extract.MAX_LINKS <= caps.MAX_LINKS
    assert extract.MAX_IMAGE_URLS <= caps.MAX_IMAGE_URLS
    assert pipeline.DEFAULT_MAX_IMAGES <= caps.MAX_IMAGES
    assert pipeline.DEFAULT_MAX_RESULT_BYTES <= caps.MAX_THUMBNAIL_BYTES


@pytest.mark.parametrize(
    "flag", [f"--max-images={caps.MAX_IMAGES + 1}", f"--max-result-bytes={caps.MAX_THUMBNAIL_BYTES + 1}"]
)
def test_flags_past_the_caps_are_refused(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        WorkerSettings.from_args([flag], env={})
    assert "the coordinator refuses larger results" in capsys.readouterr().err


def test_flags_at_the_caps_are_taken() -> None:
    settings = WorkerSettings.from_args(
        [f"--max-images={caps.MAX_IMAGES}", f"--max-result-bytes={caps.MAX_THUMBNAIL_BYTES}"], env={}
    )
    assert (settings.scrape.max_images, settings.scrape.max_result_bytes) == (caps.MAX_IMAGES, caps.MAX_THUMBNAIL_BYTES)
