"""Signing in with a crawlfleet token, and out. The token is checked by asking a coordinator for the
queue's health with it: the coordinator is the one that knows tokens and roles."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from crawlfleet.common.channel import check_token
from crawlfleet.dashboard.gateway import DashboardError, Metadata, Stubs
from crawlfleet.dashboard.sessions import COOKIE_NAME
from crawlfleet.dashboard.web import coordinators, render, sessions, settings, timeout
from crawlfleet.v1 import admin_pb2


def safe_next(target: str) -> str:
    """Only a path of this site: a crafted link must not send users elsewhere after they sign in."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def start_session(request: Request, token: str | None, target: str) -> Response:
    session_id, _ = sessions(request).start(token)
    response = RedirectResponse(safe_next(target), status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        session_id,
        httponly=True,
        samesite="strict",
        secure=settings(request).uses_https,
        path="/",
    )
    return response


async def login_page(request: Request) -> Response:
    target = request.query_params.get("next", "/")
    if settings(request).anonymous:
        return start_session(request, None, target)
    return render(request, "login.html", next=safe_next(target), error="")


async def login(request: Request) -> Response:
    form = await request.form()
    token = str(form.get("token") or "").strip()
    target = safe_next(str(form.get("next") or "/"))
    try:
        check_token(token)
    except ValueError as exc:
        return render(request, "login.html", status_code=400, next=target, error=f"token: {exc}")
    wait = timeout(request)

    async def rpc(stubs: Stubs, metadata: Metadata) -> admin_pb2.GetQueueHealthResponse:
        return await stubs.admin.GetQueueHealth(admin_pb2.GetQueueHealthRequest(), metadata=metadata, timeout=wait)

    try:
        await coordinators(request).call(token, rpc)
    except DashboardError as error:
        if error.status == 401:
            message = "the coordinator does not know this token"
        elif error.status == 403:
            message = "this token's role may not read the queue: sign in with a viewer or admin token"
        else:
            raise
        return render(request, "login.html", status_code=error.status, next=target, error=message)
    return start_session(request, token, target)


async def logout(request: Request) -> Response:
    sessions(request).end(request.cookies.get(COOKIE_NAME))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/")
    return response


ROUTES = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
