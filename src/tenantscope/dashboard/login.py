"""Signing in to the dashboard with an API key or an identity provider's token, and
signing out.

A valid admin, reader or tenant key becomes a signed, HttpOnly, SameSite=Lax session
cookie (server/sessions.py); an ingest key cannot sign in. With JWT sign-in on, a token
from the operator's identity provider becomes a session of the tenant it names, until the
token expires (server/jwt_auth.py): through a link (``GET /login/jwt?token=…&next=…``),
which a SaaS puts on its own pages, or the sign-in page's form. The forms carry a CSRF
token (double-submitted cookie); the link cannot, coming from another site by design, and
needs none: the signed token is the proof that its holder may see that tenant, and all a
forged link can do is sign a visitor in to the forger's own tenant. Failed attempts count
towards the same per-client limit as bad API keys (server/access.py)."""

from __future__ import annotations

import hmac
import time
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from tenantscope.dashboard.render import pages
from tenantscope.errors import BadRequest, Forbidden, Unauthorized
from tenantscope.server.access import check_jwt, check_key
from tenantscope.server.body import read_body
from tenantscope.server.jwt_auth import session_subject
from tenantscope.server.keys import Principal
from tenantscope.server.services import services_of
from tenantscope.server.sessions import CSRF_COOKIE, SESSION_COOKIE, SESSION_SECONDS

router = APIRouter(include_in_schema=False)
MAX_FORM_BYTES = 8192


def safe_next(value: str | None) -> str:
    """Only a path on this server (no scheme, no //host): no open redirect. Control
    characters are refused too: browsers drop tabs and newlines from a URL, so
    ``/<tab>/evil.example`` would become ``//evil.example``."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    ):
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


def _login_page(request: Request, nxt: str, error: str = "", status_code: int = 200) -> Response:
    jwt_on = services_of(request).jwt is not None
    return pages.render(
        request, "login.html", status_code=status_code, next=nxt, error=error, jwt_on=jwt_on
    )


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None and principal.role != "ingest":
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, safe_next(next))


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
        return _login_page(request, nxt, message, 401)
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


@router.get("/login/jwt")
async def login_jwt_link(request: Request, token: str = "", next: str | None = None) -> Response:
    """A link from the SaaS's own pages: its identity provider's token in ``token``."""
    return await _jwt_session(request, token, safe_next(next))


@router.post("/login/jwt")
async def login_jwt(request: Request) -> Response:
    """The sign-in page's token form (CSRF-checked as the key form is)."""
    form = await read_form(request)
    check_csrf(request, form)
    return await _jwt_session(request, form.get("token", ""), safe_next(form.get("next")))


async def _jwt_session(request: Request, token: str, nxt: str) -> Response:
    svc = services_of(request)
    if svc.jwt is None:
        message = "sign-in with your app's token is not turned on here; use an API key"
        return _login_page(request, nxt, message, 404)
    token = token.strip()
    if not token:
        return _login_page(request, nxt, "the sign-in link carries no token", 400)
    try:
        # 429 (with Retry-After) past the failure budget; a valid token signs in regardless
        identity = await check_jwt(request, token, "sign-in attempts")
    except Unauthorized as exc:
        message = f"{exc.message}. Open the page in your app again for a new sign-in link."
        return _login_page(request, nxt, message, 401)
    # the session lasts as long as the token would (never longer than a key's session)
    seconds = max(1, min(SESSION_SECONDS, identity.expires - int(time.time())))
    response = RedirectResponse(nxt, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        svc.sessions.make(session_subject(identity), seconds),
        max_age=seconds,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    # the link's URL holds the token: nothing after it may be told where it came from
    response.headers["Referrer-Policy"] = "no-referrer"
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
