"""What every page handler shares: the signed-in session, coordinator calls as its user, CSRF checks
on forms that act, query parameters read strictly (a 400 naming the parameter), and rendering."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.templating import Jinja2Templates

from crawlfleet.dashboard import present
from crawlfleet.dashboard.gateway import Call, Coordinators, DashboardError, Response
from crawlfleet.dashboard.sessions import COOKIE_NAME, Session, Sessions
from crawlfleet.dashboard.settings import DashboardSettings


class LoginRequired(Exception):
    """The request has no live session: the browser goes to the login page."""


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("crawlfleet.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(present.FILTERS)
    env.globals["percent"] = present.percent
    env.globals["is_set"] = present.is_set
    return Jinja2Templates(env=env)


def settings(request: Request) -> DashboardSettings:
    value: DashboardSettings = request.app.state.settings
    return value


def coordinators(request: Request) -> Coordinators:
    value: Coordinators = request.app.state.coordinators
    return value


def sessions(request: Request) -> Sessions:
    value: Sessions = request.app.state.sessions
    return value


def session_of(request: Request) -> Session:
    """The request's session; raises ``LoginRequired`` without one."""
    session = sessions(request).get(request.cookies.get(COOKIE_NAME))
    if session is None:
        raise LoginRequired()
    return session


async def call(request: Request, rpc: Call[Response]) -> Response:
    """``rpc`` as the signed-in user; a coordinator that no longer knows the token signs them out."""
    session = session_of(request)
    try:
        return await coordinators(request).call(session.token, rpc)
    except DashboardError as error:
        if error.status == 401 and not settings(request).anonymous:
            sessions(request).end(request.cookies.get(COOKIE_NAME))
            raise LoginRequired() from None
        raise


def timeout(request: Request) -> float:
    return coordinators(request).timeout


async def checked_form(request: Request) -> FormData:
    """The posted form, after its CSRF token was checked against the session's (403 otherwise)."""
    session = session_of(request)
    form = await request.form()
    presented = form.get("csrf")
    if not isinstance(presented, str) or not session.csrf_matches(presented):
        raise DashboardError(403, "the form's CSRF token is missing or stale: reload the page and try again")
    return form


def int_param(params: Mapping[str, Any], name: str, *, default: int, low: int, high: int) -> int:
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(str(text))
    except ValueError:
        raise DashboardError(400, f"{name}: not a whole number: {text!r}") from None
    if not low <= value <= high:
        raise DashboardError(400, f"{name}: must be between {low} and {high}, got {value}")
    return value


def text_param(params: Mapping[str, Any], name: str, *, max_length: int = 2000) -> str:
    value = str(params.get(name) or "").strip()
    if len(value) > max_length:
        raise DashboardError(400, f"{name}: at most {max_length} characters")
    return value


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page: the template with the session's CSRF token and the navigation's state."""
    session = sessions(request).get(request.cookies.get(COOKIE_NAME))
    templates: Jinja2Templates = request.app.state.templates
    base = {
        "csrf": session.csrf if session else "",
        "signed_in": session is not None,
        "anonymous": settings(request).anonymous,
        "refresh_ms": round(settings(request).refresh_seconds * 1000),
        "path": request.url.path,
        "note": request.query_params.get("done", ""),
    }
    response: HTMLResponse = templates.TemplateResponse(request, template, {**base, **context}, status_code=status_code)
    return response


def redirect_with_note(path: str, note: str) -> RedirectResponse:
    """After an action: back to a page (303, so a reload does not post again) that shows ``note``."""
    return RedirectResponse(f"{path}?{urlencode({'done': note})}", status_code=303)
