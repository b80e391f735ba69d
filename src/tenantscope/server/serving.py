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
body within ``body_timeout_s`` (server/body.py, answered 408)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from tenantscope.server.settings import Settings


class HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers. uvicorn starts
    no timer on a new connection, and its keep-alive timer stops at the first byte, so a
    connection that sends nothing, or sends its headers a byte at a time (slowloris), is
    held open for ever. Here a timer runs from the connection's start, and again from each
    answer, until the next request's headers are in; when it fires, the connection is
    closed. (h11 rather than httptools: the deadline hooks into this class.)"""

    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a new request cycle: its headers are complete
            self._disarm()

    def on_response_complete(self) -> None:
        # armed first: a pipelined request handled inside the call below disarms it
        self._arm()
        super().on_response_complete()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
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
        timeout_keep_alive=math.ceil(settings.keep_alive_timeout_s),
    )
