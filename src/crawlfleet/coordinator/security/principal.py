"""Who is calling: the principal of the current call, as the auth interceptor found it.

The interceptor runs each authenticated call's handler with the caller's principal in a context
variable; servicers read it here and nowhere else. Without tokens (auth off) there is no
principal: every job is visible and no lease is bound. See docs/security.md.
"""

from __future__ import annotations

import contextvars
import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    PRODUCER = "producer"
    WORKER = "worker"
    ADMIN = "admin"
    # Reads everything an admin reads and changes nothing: operators' dashboards and on-call.
    VIEWER = "viewer"


@dataclass(frozen=True)
class Principal:
    """Who made a call: the role and name of the token presented."""

    role: Role
    name: str


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("crawlfleet_principal", default=None)


def current_principal() -> Principal | None:
    """The principal of the call being served; None with auth off (or for public methods)."""
    return _current.get()


def bind_principal(principal: Principal | None) -> contextvars.Token[Principal | None]:
    """Make ``principal`` the current one (the interceptor, around a handler); reset with the token."""
    return _current.set(principal)


def reset_principal(token: contextvars.Token[Principal | None]) -> None:
    _current.reset(token)


def caller_name() -> str | None:
    """The current principal's name: the owner of the jobs it enqueues and of the leases it takes."""
    principal = current_principal()
    return None if principal is None else principal.name


def visible_owner() -> str | None:
    """The owner whose jobs the caller may read; None for all jobs (admins, viewers, and auth off).

    Any other role is confined to its own jobs; only producers read jobs today.
    """
    principal = current_principal()
    if principal is None or principal.role in (Role.ADMIN, Role.VIEWER):
        return None
    return principal.name
