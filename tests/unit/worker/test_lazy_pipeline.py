"""A worker of no-op jobs never loads the scrape pipeline; a scrape worker loads it when used."""

from __future__ import annotations

import subprocess
import sys

import pytest

from crawlfleet.worker.errors import WorkerError
from crawlfleet.worker.handlers import handlers_for
from crawlfleet.worker.pipeline.resources import PipelineResources
from crawlfleet.worker.pipeline.settings import ScrapeSettings

# Modules a no-op worker must not import: the HTTP client, the browser driver, image codecs,
# the robots.txt parser, and the handlers that use them.
PIPELINE_PACKAGES = {"httpx", "playwright", "PIL", "protego", "selectolax"}
PIPELINE_MODULES = {"crawlfleet.worker.handlers.scrape", "crawlfleet.worker.pipeline.fetch"}

NOOP_WORKER = """
import asyncio, sys
from crawlfleet.worker.runner import Worker
from crawlfleet.worker.settings import WorkerSettings

async def main() -> None:
    settings = WorkerSettings(worker_id="w", kinds=("noop",), coordinator="127.0.0.1:1")
    async with Worker(settings):
        pass

asyncio.run(main())
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in {PACKAGES} or m in {MODULES})))
"""


def test_a_noop_worker_starts_and_stops_without_the_pipeline_modules() -> None:
    code = NOOP_WORKER.replace("{PACKAGES}", repr(PIPELINE_PACKAGES)).replace("{MODULES}", repr(PIPELINE_MODULES))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == ""


def test_handlers_are_those_of_the_kinds_asked_for() -> None:
    handlers = handlers_for(["noop", "scrape"])
    assert sorted(handlers) == ["noop", "scrape"]
    assert all(callable(h) for h in handlers.values())
    with pytest.raises(WorkerError, match="unknown job kinds \\['nope'\\]"):
        handlers_for(["noop", "nope"])


async def test_pipeline_resources_are_made_on_first_use_and_only_those_closed() -> None:
    resources = PipelineResources(ScrapeSettings(), slots=2)
    assert resources.browser_restarts == 0
    await resources.aclose()  # nothing made: nothing to close
    assert "fetcher" not in vars(resources)
    fetcher = resources.fetcher
    assert resources.fetcher is fetcher  # made once
    assert "browser" not in vars(resources) and "images" not in vars(resources)
    await resources.aclose()


def test_the_image_index_is_not_made_by_asking_whether_it_was() -> None:
    # The runner asks after every Complete; a worker whose jobs never saw an image must not load
    # the image stage to answer.
    resources = PipelineResources(ScrapeSettings(), slots=2)
    assert resources.image_index_if_made is None
    assert resources.image_counts == {}  # what the metrics read
    assert "image_index" not in vars(resources) and "image_source" not in vars(resources)
    index = resources.image_index
    assert resources.image_index_if_made is index
