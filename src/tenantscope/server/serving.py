"""How the app is served: uvicorn's configuration from Settings, in one place for
``tenantscope serve``, ``demo`` and the tests' servers (so the tests run what ships).

Forwarded headers: uvicorn believes ``X-Forwarded-For`` / ``-Proto`` from 127.0.0.1 unless
told otherwise (``FORWARDED_ALLOW_IPS``), so any local process could claim any client
address (and rotate it past the sign-in limit) or the https scheme. Here only the
addresses in ``TENANTSCOPE_TRUSTED_PROXIES`` are believed, none by default. From a trusted
proxy, uvicorn takes the client as the rightmost address in ``X-Forwarded-For`` that is
not itself a trusted proxy: the one the proxy appended, whatever the client sent.

Timeouts: what a client sends is bounded in time, so stalled clients cannot hold
connections (and their memory) for ever. An idle kept-alive connection is closed after
``keep_alive_timeout_s`` (uvicorn's own timer); a request's headers must be complete
within ``header_timeout_s`` (``HeaderDeadline`` below: uvicorn has no such limit); its
body within ``body_timeout_s`` (server/body.py, answered 408).

Speed: httptools parses requests and uvloop runs the event loop (uvicorn's "standard"
choices); with h11 and asyncio's loop a limit check spent more time in parsing and
socket calls than in deciding."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tenantscope.server.settings import Settings


class HeaderDeadline(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for each request's headers. uvicorn
    starts no timer on a new connection, and its keep-alive timer stops at the first byte,
    so a connection that sends nothing, or sends its headers a byte at a time (slowloris),
    is held open for ever. Here a deadline runs from the connection's start, and again from
    each answer, until the next request's headers are in; when it passes, the connection is
    closed.

    One timer per connection, not one per request: arming moves the deadline, and the
    timer, when it fires early, waits for the rest (a timer made and cancelled for every
    request cost as much as deciding a limit check)."""

    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: float | None = None
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._header_deadline = None
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._header_deadline = None  # this request's headers are in
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # armed first: a pipelined request handled inside the call below disarms it
        self._arm()
        super().on_response_complete()

    def _arm(self) -> None:
        self._header_deadline = self.loop.time() + self.header_timeout
        if self._header_timer is None:
            self._header_timer = self.loop.call_at(self._header_deadline, self._expired)

    def _expired(self) -> None:
        self._header_timer = None
        deadline = self._header_deadline
        if deadline is None:
            return  # headers arrived; the next answer arms it again
        if self.loop.time() < deadline:  # armed again since: wait for the rest
            self._header_timer = self.loop.call_at(deadline, self._expired)
        elif not self.transport.is_closing():
            self.transport.close()


def uvicorn_config(
    app: Any, settings: Settings, *, log_level: str | None = None, access_log: bool = False
) -> uvicorn.Config:
    trusted = list(settings.trusted_proxies)
    protocol = type("Protocol", (HeaderDeadline,), {"header_timeout": settings.header_timeout_s})
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level or settings.log_level,
        access_log=access_log,
        lifespan="on",
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted,  # explicit: uvicorn's default trusts 127.0.0.1
        http=protocol,
        loop="auto",  # uvloop where it is installed (not on Windows)
        timeout_keep_alive=math.ceil(settings.keep_alive_timeout_s),
    )
