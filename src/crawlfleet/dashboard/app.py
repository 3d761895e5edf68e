"""The dashboard's web application: routes, static files, error pages and security headers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crawlfleet.dashboard.gateway import Coordinators, DashboardError
from crawlfleet.dashboard.login import ROUTES as LOGIN_ROUTES
from crawlfleet.dashboard.pages import crawls, dead, hosts, jobs, overview
from crawlfleet.dashboard.sessions import Sessions
from crawlfleet.dashboard.settings import DashboardSettings
from crawlfleet.dashboard.web import LoginRequired, make_templates, render

log = logging.getLogger(__name__)

# Scripts and styles come from the package only (no CDN, no inline script); pages are not framed.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    # Job pages carry target URLs: links out must not hand them on.
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP response (streams included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


async def on_login_required(request: Request, exc: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.url.path.startswith(("/events/", "/api/", "/thumbnails/")):
        return Response("sign in first", status_code=401)
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


async def on_dashboard_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DashboardError)
    if request.url.path.startswith(("/api/", "/thumbnails/")):
        return Response(f"{exc.code or exc.status}: {exc.message}", status_code=exc.status, media_type="text/plain")
    return render(request, "error.html", status_code=exc.status, error=exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return render(request, "error.html", status_code=exc.status_code, error=DashboardError(exc.status_code, exc.detail))


def build_app(settings: DashboardSettings, coordinators: Coordinators | None = None) -> Starlette:
    """The application; it opens channels to the coordinators at startup unless given them."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = coordinators is None
        app.state.coordinators = coordinators or Coordinators(
            settings.coordinators, settings.security, timeout=settings.call_timeout
        )
        try:
            yield
        finally:
            if owned:
                await app.state.coordinators.close()

    routes = [
        *LOGIN_ROUTES,
        *overview.ROUTES,
        *hosts.ROUTES,
        *crawls.ROUTES,
        *jobs.ROUTES,
        *dead.ROUTES,
        Mount("/static", StaticFiles(packages=[("crawlfleet.dashboard", "static")]), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={
            LoginRequired: on_login_required,
            DashboardError: on_dashboard_error,
            HTTPException: on_http_error,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.sessions = Sessions(settings.session_idle_seconds)
    app.state.templates = make_templates()
    return app
