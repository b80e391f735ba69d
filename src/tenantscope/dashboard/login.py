"""Signing in to the dashboard with an API key, and signing out.

A valid admin, reader or tenant key becomes a signed, HttpOnly, SameSite=Lax session
cookie (server/sessions.py); an ingest key cannot sign in. Both forms carry a CSRF token
(double-submitted cookie). Failed attempts count towards the same per-client limit as
bad API keys (server/access.py: check_key)."""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from tenantscope.dashboard.render import pages
from tenantscope.errors import BadRequest, Forbidden
from tenantscope.server.access import check_key
from tenantscope.server.body import read_body
from tenantscope.server.keys import Principal
from tenantscope.server.services import services_of
from tenantscope.server.sessions import CSRF_COOKIE, SESSION_COOKIE, SESSION_SECONDS

router = APIRouter(include_in_schema=False)
MAX_FORM_BYTES = 8192


def safe_next(value: str | None) -> str:
    """Only a path on this server (no scheme, no //host): no open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


async def read_form(request: Request, max_fields: int = 10) -> dict[str, str]:
    """A posted form's fields (the first value of each), size- and count-limited."""
    body = await read_body(request, MAX_FORM_BYTES)
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=max_fields)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the form could not be read") from None
    return {k: v[0] for k, v in parsed.items()}


def check_csrf(request: Request, form: dict[str, str]) -> None:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get("csrf", "")
    if not cookie or not sent or not hmac.compare_digest(cookie, sent):
        raise Forbidden("the form expired or came from another site; reload the page")


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None and principal.role != "ingest":
        return RedirectResponse(safe_next(next), status_code=303)
    return pages.render(request, "login.html", next=safe_next(next), error="")


@router.post("/login")
async def login(request: Request) -> Response:
    svc = services_of(request)
    form = await read_form(request)
    check_csrf(request, form)
    nxt = safe_next(form.get("next"))
    # 429 (with Retry-After) past the failure budget; a valid key signs in regardless
    principal = await check_key(request, form.get("key", ""), "sign-in attempts")
    if principal is None or principal.role == "ingest":
        message = (
            "an ingest key can only send data; sign in with an admin, reader or tenant key"
            if principal is not None
            else "that key is not valid (revoked or mistyped?)"
        )
        return pages.render(request, "login.html", status_code=401, next=nxt, error=message)
    assert principal.key_id is not None
    response = RedirectResponse(nxt, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        svc.sessions.make(principal.key_id),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await read_form(request)
    check_csrf(request, form)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await run_in_threadpool(services_of(request).sessions.revoke, cookie)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
