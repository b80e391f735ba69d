"""The ASGI app factory. One Services object is passed in explicitly (or opened from
settings) and lives on ``app.state.services``."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from tenantscope import __version__
from tenantscope.dashboard import (
    admin,
    alerts,
    apidocs,
    assets,
    compare,
    insights,
    limits,
    login,
    pages,
    plans,
    tenant_picker,
)
from tenantscope.server import (
    errors,
    routes_alerts,
    routes_api,
    routes_audit,
    routes_health,
    routes_ingest,
    routes_insights,
    routes_keys,
    routes_limits,
    routes_plans,
    routes_slos,
    runfile,
)
from tenantscope.server.access import FailureLimiter, authorize
from tenantscope.server.headers import NoStore, ServerTiming
from tenantscope.server.limits_fast import LimitsFastPath
from tenantscope.server.services import Services
from tenantscope.server.settings import Settings

DESCRIPTION = """Per-tenant cost, usage and SLA for LLM calls.

Money is an exact decimal string in USD, times are RFC 3339 UTC, lists are
`{"items": [...], "next_cursor": ...}`, errors are `{"error": {"code", "message"}}`.

A read sees every span its own key sent, and every span any key sent more than
`TENANTSCOPE_READ_LAG_MS` (1 s) before it; with the header
`Tenantscope-Consistency: strict` it waits for every span answered before it."""


def _no_self_telemetry() -> dict[str, Any]:
    """FastAPI >= 0.165 traces its own requests with the global tracer provider. In a
    process where the tenantscope SDK is also initialised (an app embedding the server,
    tests), every ingest request would then export spans back into this server, which
    ingests them and exports more: a feedback loop. The server is measured by its own
    /metrics instead."""
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    return {}


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    close_services: bool = False,
) -> FastAPI:
    """Build the app. Given ``services`` are used as they are, and closed at shutdown only
    with ``close_services``; otherwise services are opened from ``settings`` at startup and
    closed at shutdown. (Closing in the lifespan matters: uvicorn re-raises SIGTERM once
    the app has shut down, so code after ``Server.run()`` may never run.)"""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            app.state.services = services
            runfile.write(services.settings)
            try:
                yield
            finally:
                runfile.remove(services.settings)
                if close_services:
                    services.close()
            return
        svc = Services.open(settings or Settings.load())
        app.state.services = svc
        runfile.write(svc.settings)
        try:
            yield
        finally:
            runfile.remove(svc.settings)
            svc.close()

    app = FastAPI(
        title="tenantscope",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # the API reference is ours (dashboard/apidocs.py): FastAPI's pages load their
        # scripts from a CDN; ReDoc and the OAuth2 redirect page are not served at all
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        # every route's access rule is checked first (server/access.py)
        dependencies=[Depends(authorize)],
        **_no_self_telemetry(),
    )
    if services is not None:
        app.state.services = services
    errors.install(app)
    app.add_middleware(NoStore)
    app.add_middleware(ServerTiming)
    # outermost: limit decisions skip the stack (server/limits_fast.py)
    app.add_middleware(LimitsFastPath)
    # one limit for bad keys and failed sign-ins, per client address
    app.state.auth_limiter = FailureLimiter()
    app.include_router(routes_ingest.router)
    app.include_router(routes_api.router)
    app.include_router(routes_keys.router)
    app.include_router(routes_audit.router)
    app.include_router(routes_alerts.router)
    app.include_router(routes_slos.router)
    app.include_router(routes_limits.decisions)
    app.include_router(routes_limits.router)
    app.include_router(routes_plans.router)
    app.include_router(routes_insights.router)
    app.include_router(routes_health.router)
    app.include_router(pages.router)
    app.include_router(admin.router)
    app.include_router(alerts.router)
    app.include_router(limits.router)
    app.include_router(plans.router)
    app.include_router(compare.router)
    app.include_router(insights.router)
    app.include_router(tenant_picker.router)
    app.include_router(login.router)
    app.include_router(assets.router)
    app.include_router(apidocs.router)
    return app
