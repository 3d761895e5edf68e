"""Where the scrape benchmark's CPU goes, by pipeline stage: the workers' own stage timers (from their
Prometheus endpoint) and py-spy's samples of a worker sorted into stages by the code they were in.

A sample (one collapsed stack of py-spy's raw output) belongs to the first stage whose code is on
it, in STAGE_RULES order: an httpx call made while extracting is `parse`'s, not `fetch`'s.
"""

from __future__ import annotations

import re
import urllib.request
from collections import Counter
from pathlib import Path

# (stage, path fragments of its code), most specific first. `images` in the worker's own process is
# the hashing, pickling to the image pool and building results; the pool's CPU is measured apart.
STAGE_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("images", ("pipeline/images", "pipeline/image_", "concurrent/futures/process.py", "multiprocessing/")),
    ("parse", ("pipeline/extract.py", "pipeline/fields.py", "pipeline/autodetect.py", "selectolax")),
    ("browser", ("playwright/", "pipeline/browser")),
    ("fetch", ("httpx/", "httpcore/", "anyio/", "h11/", "pipeline/fetch.py", "pipeline/decoding.py", "egress.py")),
    ("grpc", ("grpc/", "google/protobuf", "_pb2", "worker/reporting.py", "worker/leases.py", "worker/client.py")),
)
STAGES = (*(stage for stage, _ in STAGE_RULES), "other")
_STAGE_SUM = re.compile(r'^crawlfleet_worker_stage_seconds_sum\{stage="(\w+)"\} (\S+)$', re.MULTILINE)
_IMAGES_TOTAL = re.compile(r'^crawlfleet_worker_images_total\{how="(\w+)"\} (\S+)$', re.MULTILINE)
_RAW_LINE = re.compile(r"^(.*) (\d+)$")


def stage_of(stack: str) -> str:
    for stage, fragments in STAGE_RULES:
        if any(fragment in stack for fragment in fragments):
            return stage
    return "other"


def samples_by_stage(raw_profile: Path) -> Counter[str]:
    """py-spy `--format raw` output (one `frame;frame;... count` line per distinct stack) by stage."""
    samples: Counter[str] = Counter()
    if not raw_profile.exists():
        return samples
    for line in raw_profile.read_text(errors="replace").splitlines():
        match = _RAW_LINE.match(line)
        if match:
            samples[stage_of(match.group(1))] += int(match.group(2))
    return samples


def stage_seconds(metrics_url: str, timeout: float = 5.0) -> dict[str, float]:
    """The worker's crawlfleet_worker_stage_seconds_sum by stage, wall seconds summed over jobs, and
    its crawlfleet_worker_images_total by how (as ``images_<how>``: counts, not seconds)."""
    with urllib.request.urlopen(metrics_url, timeout=timeout) as response:
        text = response.read().decode()
    figures = {stage: float(value) for stage, value in _STAGE_SUM.findall(text)}
    figures.update((f"images_{how}", float(value)) for how, value in _IMAGES_TOTAL.findall(text))
    return figures


def per_page_ms(seconds: dict[str, float], pages: int) -> dict[str, float]:
    return {name: round(1000 * value / pages, 2) for name, value in seconds.items()}


def split_cpu(cpu_s: dict[str, float], samples: Counter[str], pages: int) -> dict[str, float]:
    """CPU milliseconds per page by stage. The workers' own CPU (from /proc) is split by the profiled
    worker's sample shares; the image pool, browser, coordinator and PostgreSQL are their processes'."""
    total = sum(samples.values())
    split: dict[str, float] = {}
    if total:
        for stage in STAGES:
            split[stage] = cpu_s["workers"] * samples[stage] / total
    else:
        split["worker_unsplit"] = cpu_s["workers"]
    split["images"] = split.get("images", 0.0) + cpu_s.get("image_pool", 0.0)
    split["browser"] = split.get("browser", 0.0) + cpu_s.get("browser", 0.0)
    # Storage: the coordinator (its gRPC server, result checks, queries) and PostgreSQL.
    split["coordinator"] = cpu_s.get("coordinator", 0.0)
    split["postgres"] = cpu_s.get("postgres", 0.0)
    return per_page_ms(split, pages)
