"""Fetching a host's robots.txt through the guarded fetcher, as RFC 9309 §2.3 asks: the same
User-Agent as page fetches, up to five redirects (to other hosts too, each hop guarded), the first
500 KiB of the body."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from crawlfleet.common import robots
from crawlfleet.worker.pipeline.fetch import FetchError, GuardedFetcher


@dataclass(frozen=True, kw_only=True)
class RobotsFetch:
    """What fetching a robots.txt gave: the final status (0: no answer, `error_type` says why) and
    the body of a 2xx answer."""

    url: str
    status: int
    body: bytes = b""
    error_type: str = ""
    error_message: str = ""

    @property
    def found(self) -> bool:
        """A 2xx answer: its body holds the rules."""
        return 200 <= self.status < 300

    def describe(self) -> str:
        return f"HTTP {self.status}" if self.status else f"{self.error_type}: {self.error_message}"


def robots_url(page_url: str, host: str) -> str:
    """The robots.txt of `host` (a lease's host name, port included when not the default), over the
    page's scheme."""
    return f"{urlsplit(page_url).scheme}://{host}{robots.ROBOTS_PATH}"


async def fetch_robots(fetcher: GuardedFetcher, url: str, *, timeout: float) -> RobotsFetch:
    """GET a robots.txt; failures come back as a RobotsFetch with status 0, never raised."""
    try:
        fetched = await fetcher.get(
            url, max_bytes=robots.MAX_BODY_BYTES, timeout=timeout, max_redirects=robots.MAX_REDIRECTS, truncate=True
        )
    except FetchError as exc:
        return RobotsFetch(url=url, status=0, error_type=exc.error_type, error_message=exc.message)
    found = 200 <= fetched.status < 300
    return RobotsFetch(url=url, status=fetched.status, body=fetched.body if found else b"")
