"""Dashboard sessions: idle expiry, sign-out, the CSRF token, and where a sign-in may lead."""

from __future__ import annotations

from crawlfleet.dashboard.login import safe_next
from crawlfleet.dashboard.sessions import Sessions


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_lasts_while_used_and_ends_when_idle_too_long() -> None:
    clock = Clock()
    sessions = Sessions(idle_seconds=60, clock=clock)
    session_id, session = sessions.start("token-1")
    clock.now += 50
    assert sessions.get(session_id) is session  # use renews it
    clock.now += 50
    assert sessions.get(session_id) is session
    clock.now += 61
    assert sessions.get(session_id) is None
    assert sessions.get(session_id) is None  # and it stays gone


def test_sign_out_and_unknown_ids() -> None:
    sessions = Sessions(idle_seconds=60)
    session_id, _ = sessions.start(None)
    sessions.end(session_id)
    assert sessions.get(session_id) is None
    assert sessions.get("made-up") is None
    assert sessions.get("") is None


def test_each_session_has_its_own_csrf_token() -> None:
    sessions = Sessions(idle_seconds=60)
    _, first = sessions.start("a")
    _, second = sessions.start("a")
    assert first.csrf != second.csrf
    assert first.csrf_matches(first.csrf)
    assert not first.csrf_matches(second.csrf)
    assert not first.csrf_matches("")


def test_a_sign_in_leads_only_to_this_site() -> None:
    assert safe_next("/jobs?state=dead") == "/jobs?state=dead"
    for elsewhere in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "jobs"):
        assert safe_next(elsewhere) == "/"
