"""Response headers every answer gets, whatever route made it."""

from __future__ import annotations

import time

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


class ServerTiming:
    """``Server-Timing: store-wait;dur=..., total;dur=...`` on every read: how long the read
    waited for answered records to reach the store (server/access.py) and how long the
    whole answer took until its headers, in ms. Browsers' developer tools and
    ``bench/mixed.py`` show where a slow read spent its time."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()

        async def send_timing(message: Message) -> None:
            if message["type"] == "http.response.start":
                waited = scope.get("state", {}).get(STORE_WAIT_MS)
                if waited is not None:
                    total = (time.perf_counter() - began) * 1000
                    MutableHeaders(scope=message).append(
                        "server-timing", f"store-wait;dur={waited:.1f}, total;dur={total:.1f}"
                    )
            await send(message)

        await self.app(scope, receive, send_timing)


# the request state's entry for the time a read waited for the store, in ms
STORE_WAIT_MS = "store_wait_ms"
