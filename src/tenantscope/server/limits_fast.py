"""The limit decisions (``POST /v1/limits/check|extend|settle|release``) answered ahead of
the middleware and routing stack.

A check sits in front of every LLM call of every app, so its cost is added to each call:
through FastAPI's stack (dependency solving, a thread hop for the key, five middlewares)
one took about 1 ms of server time; here about a fifth of that. The rules are the same —
the key must have the ``ingest`` capability (``access.RULES``), a bound key decides the
tenant, bodies are bounded in size and time, errors have the API's JSON shape, answers
carry ``Cache-Control: no-store`` — and so are the functions that decide
(``routes_limits.do_*``), which the FastAPI routes also call (they remain for the API
reference and as the same answer for anything this does not take).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import orjson
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from tenantscope.errors import (
    BadRequest,
    Forbidden,
    PayloadTooLarge,
    RequestTimeout,
    TenantscopeError,
    Unauthorized,
)
from tenantscope.server import routes_limits
from tenantscope.server.access import RULES, bearer, principal_of_token
from tenantscope.server.errors import error_response
from tenantscope.server.keys import INSECURE, Principal
from tenantscope.server.routes_alerts import MAX_BODY_BYTES
from tenantscope.server.services import Services

Handler = Callable[[Services, Principal | None, Any], Any]
HANDLERS: dict[str, Handler] = {
    "/v1/limits/check": routes_limits.do_check,
    "/v1/limits/extend": routes_limits.do_extend,
    "/v1/limits/settle": routes_limits.do_settle,
    "/v1/limits/release": routes_limits.do_release,
}
_JSON_HEADERS = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
]


class LimitsFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        assert all(RULES[path] == "ingest" for path in HANDLERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = HANDLERS.get(scope.get("path", "")) if scope["type"] == "http" else None
        if handler is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            svc: Services = scope["app"].state.services
            principal = await self._principal(scope, svc)
            data = _json(await _body(receive, svc.settings.body_timeout_s))
            result = handler(svc, principal, data)
            if isinstance(result, Awaitable):
                result = await result
        except TenantscopeError as exc:
            response = error_response(exc.status, exc.code, exc.message, exc.details)
            response.headers.update({**exc.headers, "cache-control": "no-store"})
            await response(scope, receive, send)
            return
        body = orjson.dumps(result)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _principal(self, scope: Scope, svc: Services) -> Principal:
        if svc.settings.insecure_no_auth:
            return INSECURE
        token = bearer(Headers(scope=scope))
        if token is None:
            raise Unauthorized(
                "an API key is required: send Authorization: Bearer <key> (or x-api-key)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        # a key checked moments ago is in the cache: no thread hop; else the usual check
        # (the store or the identity provider's token, the failure limiter)
        principal = svc.keys.cached_principal(token)
        if principal is None:
            principal = await principal_of_token(Request(scope), token)
        if not principal.can("ingest"):
            raise Forbidden(f"a {principal.role} key may not use {scope['path']}")
        return principal


async def _body(receive: Receive, timeout: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    with anyio.move_on_after(timeout):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest("the client went away before its body arrived")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise PayloadTooLarge(f"body is over the limit of {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
    raise RequestTimeout(
        f"the request body did not arrive within {timeout:g} s; send it again",
        headers={"Connection": "close"},
    )


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw or b"null")
    except orjson.JSONDecodeError:
        raise BadRequest("the body must be JSON") from None
