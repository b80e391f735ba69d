"""Response headers every answer gets, whatever route made it."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class NoStore:
    """``Cache-Control: no-store`` on every answer but a static file: API answers carry
    tenants' figures and key tokens (shown once), which must not sit in a browser's
    history cache or a shared proxy's. Static files (content-hashed URLs, cached for a
    year) are left alone, and an answer that sets its own Cache-Control keeps it. Pure
    ASGI, so streamed answers stay streamed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith("/static/"):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, send_no_store)
