"""ASGI middleware: set the tenant context for each request (FastAPI, Starlette, any ASGI app).

::

    app.add_middleware(TenantscopeMiddleware)                      # from X-Tenant-Id etc.
    app.add_middleware(TenantscopeMiddleware, resolve=from_auth)   # from your own logic

Headers are whatever the client sends: take the tenant from them only behind a gateway that
sets them after authenticating the caller. Otherwise pass ``resolve``, a function of the
ASGI scope (sync or async) returning the fields, e.g. from the authenticated user.
Pure ASGI: no Starlette import, and the context holds for the whole request including
background tasks and streamed responses.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from tenantscope.sdk._context import FIELDS, context
from tenantscope.sdk._stats import internal_error

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Fields = Mapping[str, Any]
Resolver = Callable[[Scope], Fields | None | Awaitable[Fields | None]]


class TenantscopeMiddleware:
    """Wrap an ASGI app; each HTTP/WebSocket request runs in its own tenant context.

    ``tenant_header``, ``user_header``, ``session_header``, ``customer_header`` (and
    optionally ``workspace_header``, ``feature_header``) name the request headers read; pass
    None to ignore one. ``resolve(scope)`` returns a mapping with any of ``tenant_id``,
    ``user_id``, ``session_id``, ``workspace_id``, ``feature``, ``billable_action``,
    ``customer_visible_label``, ``customer_id``; its values win over the headers. If
    ``resolve`` raises, the request goes on without that context (the error is logged once
    and counted: attribution must not take the app down).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        tenant_header: str | None = "X-Tenant-Id",
        user_header: str | None = "X-User-Id",
        session_header: str | None = "X-Session-Id",
        customer_header: str | None = "X-Customer-Id",
        workspace_header: str | None = None,
        feature_header: str | None = None,
        resolve: Resolver | None = None,
    ) -> None:
        self.app = app
        self._headers: dict[bytes, str] = {
            header.lower().encode("latin-1"): field
            for header, field in (
                (tenant_header, "tenant_id"),
                (user_header, "user_id"),
                (session_header, "session_id"),
                (customer_header, "customer_id"),
                (workspace_header, "workspace_id"),
                (feature_header, "feature"),
            )
            if header
        }
        self._resolve = resolve

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        fields = await self._fields(scope)
        if not fields:
            await self.app(scope, receive, send)
            return
        with context(**fields):
            await self.app(scope, receive, send)

    async def _fields(self, scope: Scope) -> dict[str, str]:
        fields: dict[str, str] = {}
        if self._headers:
            for name, value in scope.get("headers") or ():
                field = self._headers.get(bytes(name).lower())
                if field is not None and field not in fields:
                    text = bytes(value).decode("latin-1").strip()
                    if text:
                        fields[field] = text
        if self._resolve is not None:
            try:
                result = self._resolve(scope)
                if inspect.isawaitable(result):
                    result = await result
                for key, value in (result or {}).items():
                    if key in FIELDS and value is not None:
                        fields[key] = value if isinstance(value, str) else str(value)
            except Exception as exc:
                internal_error("TenantscopeMiddleware resolve", exc)
        return fields
