"""What a set of jobs stored: pages, renders, images and thumbnails, retries, dead jobs (for ``demo``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from crawlfleet.cli.render import STATES, format_duration, state_name, table, truncate
from crawlfleet.v1 import jobs_pb2


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    jobs: int
    states: dict[str, int]
    pages_stored: int
    rendered_in_browser: int
    images_processed: int
    images_failed: int
    distinct_images: int
    thumbnails_stored: int
    retries: int
    # (job id, URL, last error) of each dead job.
    dead: list[tuple[int, str, str]]
    elapsed_seconds: float

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["dead"] = [{"job_id": i, "url": u, "last_error": e} for i, u, e in self.dead]
        return data


def summarize(jobs: Iterable[jobs_pb2.Job], elapsed: float) -> RunSummary:
    jobs = list(jobs)
    pages = [j.result.scrape for j in jobs if j.state == jobs_pb2.JOB_STATE_SUCCEEDED and j.result.HasField("scrape")]
    images = [i for page in pages for i in page.images]
    processed = [i for i in images if not i.error_type]
    states = Counter(state_name(j.state) for j in jobs)
    return RunSummary(
        jobs=len(jobs),
        states={s: states[s] for s in STATES if states[s]},
        pages_stored=len(pages),
        rendered_in_browser=sum(1 for p in pages if p.rendered_with == jobs_pb2.RENDER_MODE_BROWSER),
        images_processed=len(processed),
        images_failed=len(images) - len(processed),
        distinct_images=len({i.sha256 for i in processed}),
        thumbnails_stored=len({t.sha256 for i in processed for t in i.thumbnails}),
        # Attempts beyond the first; a job's attempt counter is what its retries charged.
        retries=sum(max(0, j.attempt - 1) for j in jobs),
        dead=[(j.id, j.target_url, j.last_error) for j in jobs if j.state == jobs_pb2.JOB_STATE_DEAD],
        elapsed_seconds=elapsed,
    )


def summary_lines(summary: RunSummary, expected: dict[str, int] | None = None) -> list[str]:
    """The summary as a small table; figures that differ from ``expected`` say so."""

    def figure(name: str, value: int, note: str = "") -> tuple[str, str]:
        want = (expected or {}).get(name)
        mismatch = f"  (the demo site expects {want})" if want is not None and want != value else ""
        return name.replace("_", " "), f"{value}{note}{mismatch}"

    states = ", ".join(f"{n} {s}" for s, n in summary.states.items())
    rows = [
        ("jobs", f"{summary.jobs} ({states})"),
        figure("pages_stored", summary.pages_stored),
        figure("rendered_in_browser", summary.rendered_in_browser),
        figure("images_processed", summary.images_processed),
        figure("images_failed", summary.images_failed),
        figure("distinct_images", summary.distinct_images),
        figure("thumbnails_stored", summary.thumbnails_stored),
        figure("retries", summary.retries),
        figure("dead", len(summary.dead)),
        ("elapsed", format_duration(summary.elapsed_seconds)),
    ]
    lines = ["  " + line for line in table(None, rows).splitlines()]
    for job_id, url, error in summary.dead:
        lines.append(f"  dead: job {job_id} {url}: {truncate(error, 100)}")
    return lines
