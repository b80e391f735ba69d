"""How the app is served: uvicorn's configuration from Settings, in one place for
``tenantscope serve``, ``demo`` and the tests' servers (so the tests run what ships).

Forwarded headers: uvicorn believes ``X-Forwarded-For`` / ``-Proto`` from 127.0.0.1 unless
told otherwise (``FORWARDED_ALLOW_IPS``), so any local process could claim any client
address (and rotate it past the sign-in limit) or the https scheme. Here only the
addresses in ``TENANTSCOPE_TRUSTED_PROXIES`` are believed, none by default. From a trusted
proxy, uvicorn takes the client as the rightmost address in ``X-Forwarded-For`` that is
not itself a trusted proxy: the one the proxy appended, whatever the client sent."""

from __future__ import annotations

from typing import Any

import uvicorn

from tenantscope.server.settings import Settings


def uvicorn_config(
    app: Any, settings: Settings, *, log_level: str | None = None, access_log: bool = False
) -> uvicorn.Config:
    trusted = list(settings.trusted_proxies)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level or settings.log_level,
        access_log=access_log,
        lifespan="on",
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted,  # explicit: uvicorn's default trusts 127.0.0.1
    )
