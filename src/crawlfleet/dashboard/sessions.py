"""Signed-in users: a random session id in a cookie, the user's crawlfleet token kept server-side
beside it (never in the browser), and a CSRF token per session that every form that acts carries.

Sessions live in this process's memory: a restart signs everyone out, and several dashboard
processes behind one address need sticky sessions (docs/dashboard.md).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

COOKIE_NAME = "crawlfleet_session"
MAX_SESSIONS = 10_000


@dataclass
class Session:
    """One signed-in browser: its token (None without login) and its CSRF token."""

    token: str | None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    last_used: float = 0.0

    def csrf_matches(self, presented: str) -> bool:
        return hmac.compare_digest(self.csrf.encode(), presented.encode())


class Sessions:
    """Sessions by id, dropped after ``idle_seconds`` unused; the oldest go beyond MAX_SESSIONS."""

    def __init__(self, idle_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._idle = idle_seconds
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def start(self, token: str | None) -> tuple[str, Session]:
        """A new session for ``token``; returns its id (the cookie's value) and the session."""
        session_id = secrets.token_urlsafe(32)
        session = Session(token=token, last_used=self._clock())
        self._sessions[session_id] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of this id, now marked used; None when unknown or idle too long."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_used > self._idle:
            del self._sessions[session_id]
            return None
        session.last_used = now
        self._sessions.move_to_end(session_id)
        return session

    def end(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)
