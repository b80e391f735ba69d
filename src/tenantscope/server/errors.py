"""The one place errors become responses: ``{"error": {"code", "message"}}``, or an HTML
page for the dashboard (its routes mark the request; an unknown path asked for by a
browser gets the page too)."""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from tenantscope.errors import LoginRequired, TenantscopeError

log = logging.getLogger("tenantscope.server")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
}


def error_response(status: int, code: str, message: str, details: object = None) -> JSONResponse:
    body: dict[str, object] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status)


# Paths that always answer JSON, whatever the client accepts (the others are pages, or
# the JSON error of a client that does not ask for HTML).
MACHINE_PREFIXES = ("/api", "/v1/", "/docs", "/openapi", "/healthz", "/readyz", "/metrics")


def _wants_html(request: Request) -> bool:
    if getattr(request.state, "html", False):
        return True
    path = request.url.path
    if path.startswith(MACHINE_PREFIXES) or path == "/v1":
        return False
    return "text/html" in request.headers.get("accept", "")


def respond(
    request: Request, status: int, code: str, message: str, details: object = None
) -> Response:
    if _wants_html(request):
        from tenantscope.dashboard.render import pages

        return pages.render(
            request, "error.html", status_code=status, status=status, code=code, message=message
        )
    return error_response(status, code, message, details)


def install(app: FastAPI) -> None:
    @app.exception_handler(TenantscopeError)
    async def _ours(request: Request, exc: TenantscopeError) -> Response:
        if isinstance(exc, LoginRequired):
            return RedirectResponse(f"/login?next={quote(exc.next_url, safe='')}", 303)
        if exc.status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
        response = respond(request, exc.status, exc.code, exc.message, exc.details)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _params(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path"))
            problems.append(f"{loc}: {err.get('msg', 'invalid')}")
        return respond(request, 400, "bad_request", "; ".join(problems) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.url.path}"
        return respond(request, exc.status_code, code, message)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        response = respond(request, 500, "internal_error", "internal error; see the server log")
        # this handler runs outside the app's middleware (server/headers.py)
        response.headers.setdefault("Cache-Control", "no-store")
        return response
