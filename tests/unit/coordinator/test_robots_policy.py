"""What a robots.txt fetch means for its host (RFC 9309 §2.3.1), which failures skip a job, and the
Crawl-delay cap."""

from __future__ import annotations

import pytest

from crawlfleet.common.robots import RobotsState, skips_job
from crawlfleet.coordinator.politeness import Politeness, robots_state_of
from crawlfleet.v1 import job_queue_pb2 as pb


@pytest.mark.parametrize(
    ("status", "error_type", "state"),
    [
        (200, "", RobotsState.RULES),
        (204, "", RobotsState.RULES),
        (301, "", RobotsState.ALLOW_ALL),  # a redirect still unanswered after five hops
        (401, "", RobotsState.ALLOW_ALL),
        (403, "", RobotsState.ALLOW_ALL),
        (404, "", RobotsState.ALLOW_ALL),
        (429, "", RobotsState.UNREACHABLE),  # "too fast" is no licence to fetch everything
        (500, "", RobotsState.UNREACHABLE),
        (503, "", RobotsState.UNREACHABLE),
        (0, "too_many_redirects", RobotsState.ALLOW_ALL),
        (0, "blocked_destination", RobotsState.ALLOW_ALL),
        (0, "timeout", RobotsState.UNREACHABLE),
        (0, "connection_refused", RobotsState.UNREACHABLE),
        (0, "dns_error", RobotsState.UNREACHABLE),
        (0, "tls_error", RobotsState.UNREACHABLE),
        (0, "something_new", RobotsState.UNREACHABLE),  # an unknown failure disallows, never allows
    ],
)
def test_what_an_answer_means(status: int, error_type: str, state: RobotsState) -> None:
    assert robots_state_of(status, error_type) is state


def test_only_a_final_robots_disallowed_skips() -> None:
    assert skips_job("robots_disallowed", retryable=False, release=False)
    assert not skips_job("robots_disallowed", retryable=True, release=False)
    assert not skips_job("robots_disallowed", retryable=False, release=True)
    assert not skips_job("http_4xx", retryable=False, release=False)


def test_a_crawl_delay_is_capped_and_kept_in_ms() -> None:
    polite = Politeness(max_crawl_delay_seconds=30.0)
    assert polite.robots_delay_ms(None) is None
    assert polite.robots_delay_ms(2.5) == 2500
    assert polite.robots_delay_ms(3600.0) == 30_000


def test_states_convert_to_and_from_the_api() -> None:
    for state in RobotsState:
        assert RobotsState.from_proto(state.to_proto()) is state
    assert RobotsState.from_proto(pb.ROBOTS_STATE_UNSPECIFIED) is RobotsState.UNKNOWN
    assert RobotsState.from_proto(99) is RobotsState.UNKNOWN
