"""Who may call what: one access rule per route, checked before any route runs (an
app-wide dependency, so it sees the matched route).

Every route of the app must appear in ``RULES``; a request to a route without a rule is
refused (fail closed), and tests/server/test_access_matrix.py fails when a route has none.
The caller is the key in ``Authorization: Bearer …`` or ``x-api-key`` (OTLP exporters send
it through ``OTEL_EXPORTER_OTLP_HEADERS``), or a signed dashboard session cookie (accepted
on reads and on the dashboard's own CSRF-protected forms only). The caller's query Scope
comes from its key, never from a request parameter.
"""

from __future__ import annotations

import threading
import time

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import Scope

from tenantscope.errors import Forbidden, LoginRequired, TooManyRequests, Unauthorized
from tenantscope.server.errors import MACHINE_PREFIXES
from tenantscope.server.keys import INSECURE, Principal
from tenantscope.server.services import Services, services_of
from tenantscope.server.sessions import SESSION_COOKIE

PUBLIC = "public"  # no key: health, static files, the login page, the API reference
# capability a route needs -> see keys.CAN for which roles have it
RULES: dict[str, str] = {
    # health and reference
    "/healthz": PUBLIC,
    "/readyz": PUBLIC,
    "/docs": PUBLIC,
    "/openapi.json": PUBLIC,
    "/static/{name:path}": PUBLIC,
    "/login": PUBLIC,
    "/logout": PUBLIC,  # only ends the caller's own session (CSRF-checked)
    "/metrics": "read_all",
    # ingest
    "/v1/traces": "ingest",
    "/v1/events": "ingest",
    # JSON API (tenant keys: scoped to their tenant by the query layer)
    "/api": "read",
    "/api/tenants": "read",
    "/api/tenants/{tenant_id:path}/usage": "read",
    "/api/tenants/{tenant_id:path}": "read",
    "/api/traces": "read",
    "/api/traces/{trace_id}": "read",
    "/api/users": "read",
    "/api/sessions": "read",
    "/api/breakdown": "read",
    "/api/timeseries": "read",
    "/api/sla": "read",
    "/api/keys": "admin",
    "/api/keys/{key_id}": "admin",
    # dashboard
    "/": "read",
    "/tenants": "read_all",
    "/tenant": "read",
    "/traces": "read",
    "/traces/{trace_id}": "read",
    "/users": "read",
    "/sessions": "read",
    "/sla": "read",
    "/prices": "read_all",
}
# POST routes that accept the session cookie (they check a CSRF token themselves).
_COOKIE_POSTS = frozenset({"/logout"})


class FailureLimiter:
    """Failed key or login attempts per client address: past ``limit`` within ``window``
    seconds, that client gets 429 on its authentication attempts until the window
    passes. Memory is bounded (oldest clients are forgotten)."""

    def __init__(self, limit: int = 20, window: float = 60.0, max_clients: int = 10_000):
        self.limit = limit
        self.window = window
        self._max = max_clients
        self._lock = threading.Lock()
        self._fails: dict[str, list[float]] = {}

    def blocked(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: it may)."""
        now = time.monotonic()
        with self._lock:
            times = [t for t in self._fails.get(client, ()) if now - t < self.window]
            if times:
                self._fails[client] = times
            else:
                self._fails.pop(client, None)
            if len(times) < self.limit:
                return 0.0
            return max(0.0, self.window - (now - times[0]))

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            if client not in self._fails and len(self._fails) >= self._max:
                self._fails.pop(next(iter(self._fails)))
            self._fails.setdefault(client, []).append(now)


def client_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def bearer(headers: Headers) -> str | None:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("x-api-key") or None


async def authorize(request: Request) -> None:
    """The app-wide dependency every route runs first: find the route's rule, resolve the
    caller, refuse or let through, and leave ``request.state.principal`` / ``.scope``."""
    route = request.scope.get("route")
    path: str = getattr(route, "path", "")
    rule = RULES.get(path)
    if rule is None:
        raise Forbidden(f"{path or request.url.path} has no access rule; refused")
    svc = services_of(request)
    insecure = svc.settings.insecure_no_auth
    # public routes look only at the session (the sign-in page redirects a signed-in
    # user); a stale key sent to /healthz must not fail it or count as an attempt
    principal = INSECURE if insecure else await _principal(request, path, svc, rule != PUBLIC)
    if principal is not None:
        request.state.principal = principal
        request.state.scope = principal.scope
    if rule == PUBLIC:
        return
    if principal is None:
        # a page asked for without a session: the sign-in page (JSON routes get a 401)
        if not path.startswith(MACHINE_PREFIXES) and request.method in ("GET", "HEAD"):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(target)
        raise Unauthorized(
            "an API key is required: send Authorization: Bearer <key> (or x-api-key)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not principal.can(rule):
        raise Forbidden(f"a {principal.role} key may not use {path}")
    if rule in ("read", "read_all"):
        # what was answered before this request is what it reads (ingest/writer.py)
        await svc.writer.wait_applied()


async def _principal(request: Request, path: str, svc: Services, use_key: bool) -> Principal | None:
    token = bearer(request.headers) if use_key else None
    limiter: FailureLimiter = request.app.state.auth_limiter
    if token is not None:
        client = client_of(request.scope)
        wait = limiter.blocked(client)
        if wait:
            raise TooManyRequests(
                "too many failed key attempts from this address; wait and retry",
                headers={"Retry-After": str(int(wait) + 1)},
            )
        found = await run_in_threadpool(svc.keys.principal, token)
        if found is None:
            limiter.failed(client)
            raise Unauthorized(
                "the API key is not valid (revoked or mistyped?)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return found
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and (request.method in ("GET", "HEAD") or path in _COOKIE_POSTS):
        key_id = svc.sessions.read(cookie)
        if key_id is not None:
            return await run_in_threadpool(svc.keys.principal_of_key_id, key_id)
    return None
