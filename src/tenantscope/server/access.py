"""Who may call what: one access rule per route, checked before any route runs (an
app-wide dependency, so it sees the matched route).

Every route of the app must appear in ``RULES``; a request to a route without a rule is
refused (fail closed), and tests/server/test_access_matrix.py fails when a route has none.
The caller is the key in ``Authorization: Bearer …`` or ``x-api-key`` (OTLP exporters send
it through ``OTEL_EXPORTER_OTLP_HEADERS``), a JWT from the operator's identity provider in
their place (a tenant without a key: server/jwt_auth.py), or a signed dashboard session
cookie (accepted on reads and on the dashboard's own CSRF-protected forms only). The
caller's query Scope comes from its key or token, never from a request parameter.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict, deque

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import Scope

from tenantscope.errors import BadRequest, Forbidden, LoginRequired, TooManyRequests, Unauthorized
from tenantscope.server.errors import MACHINE_PREFIXES
from tenantscope.server.headers import STORE_WAIT_MS
from tenantscope.server.jwt_auth import (
    JwtIdentity,
    JwtRefused,
    identity_of_session,
    looks_like_jwt,
)
from tenantscope.server.keys import INSECURE, Principal, split_token
from tenantscope.server.services import Services, services_of
from tenantscope.server.sessions import SESSION_COOKIE

PUBLIC = "public"  # no key: health, static files, the login page, the API reference
# configuration admins change and readers may see (alert rules): GET and HEAD need
# read_all, any other method admin
CONFIG = "config"
# capability a route needs -> see keys.CAN for which roles have it
RULES: dict[str, str] = {
    # health and reference
    "/healthz": PUBLIC,
    "/readyz": PUBLIC,
    "/docs": PUBLIC,
    "/openapi.json": PUBLIC,
    "/static/{name:path}": PUBLIC,
    "/login": PUBLIC,
    # a JWT from the identity provider becomes a tenant session (the token is the credential)
    "/login/jwt": PUBLIC,
    "/logout": PUBLIC,  # only ends the caller's own session (CSRF-checked)
    "/metrics": "read_all",
    # ingest
    "/v1/traces": "ingest",
    "/v1/events": "ingest",
    # limit decisions (the SDK's key)
    "/v1/limits/check": "ingest",
    "/v1/limits/extend": "ingest",
    "/v1/limits/settle": "ingest",
    "/v1/limits/release": "ingest",
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
    "/api/tenant-suggestions": "read_all",  # the tenant selector: never for a tenant key
    "/api/keys": "admin",
    "/api/keys/{key_id}": "admin",
    "/api/audit": "admin",
    "/api/alerts/rules": CONFIG,
    "/api/alerts/rules/{rule_id}": CONFIG,
    "/api/alerts/rules/{rule_id}/silence": CONFIG,
    "/api/alerts/instances": CONFIG,
    "/api/alerts/history": CONFIG,
    "/api/alerts/contacts": CONFIG,
    "/api/alerts/contacts/{contact_id}": CONFIG,
    "/api/alerts/contacts/{contact_id}/test": CONFIG,
    "/api/slos": CONFIG,
    "/api/slos/{slo_id}": CONFIG,
    "/api/slo-status": "read",
    "/api/limits": CONFIG,
    "/api/limits/status": "read",
    "/api/limits/approvals": CONFIG,
    "/api/limits/approvals/{approval_id}/revoke": CONFIG,
    "/api/limits/{limit_id}": CONFIG,
    "/api/plans": CONFIG,
    "/api/plans/assignments": CONFIG,
    "/api/plans/assignments/{assignment_id}": CONFIG,
    "/api/plans/{plan_id}": CONFIG,
    "/api/insights": "read",
    # dashboard
    "/": "read",
    "/tenants": "read_all",
    "/tenant": "read",
    "/traces": "read",
    "/traces/{trace_id}": "read",
    "/users": "read",
    "/sessions": "read",
    "/sla": "read",
    "/insights": "read",  # a tenant session: its own tenant's
    "/prices": "read_all",
    "/compare": "read_all",  # tenants side by side
    "/select-tenant": "read_all",  # the tenant selector (a tenant key's portal is one tenant)
    # dashboard admin pages (dashboard/admin.py)
    "/admin/tenants": "admin",
    "/admin/tenant": "admin",
    "/admin/prices": "admin",
    "/admin/prices/delete": "admin",
    "/admin/keys": "admin",
    "/admin/keys/revoke": "admin",
    "/audit": "admin",
    # dashboard alert pages (dashboard/alerts.py): reading for admin and reader sessions,
    # the forms for admins
    "/alerts": "read_all",
    "/alerts/rule": "read_all",
    "/admin/alerts/rule": "admin",
    "/admin/alerts/rule/delete": "admin",
    "/admin/alerts/silence": "admin",
    "/admin/alerts/contact": "admin",
    "/admin/alerts/contact/delete": "admin",
    "/admin/alerts/contact/test": "admin",
    # dashboard limit pages (dashboard/limits.py): reading for admin and reader sessions
    # (a tenant session sees its own limits on its tenant page), the forms for admins
    "/limits": "read_all",
    "/admin/limits/limit": "admin",
    "/admin/limits/limit/delete": "admin",
    "/admin/limits/approval": "admin",
    "/admin/limits/approval/revoke": "admin",
    # dashboard plan pages (dashboard/plans.py): reading for admin and reader sessions
    # (a tenant session sees no plan yet), the forms for admins
    "/plans": "read_all",
    "/admin/plans/plan": "admin",
    "/admin/plans/plan/delete": "admin",
    "/admin/plans/assign": "admin",
    "/admin/plans/unassign": "admin",
}
# POST routes that accept the session cookie (they check a CSRF token themselves).
_COOKIE_POSTS = frozenset(
    {
        "/logout",
        "/admin/tenant",
        "/admin/prices",
        "/admin/prices/delete",
        "/admin/keys",
        "/admin/keys/revoke",
        "/admin/alerts/rule",
        "/admin/alerts/rule/delete",
        "/admin/alerts/silence",
        "/admin/alerts/contact",
        "/admin/alerts/contact/delete",
        "/admin/alerts/contact/test",
        "/admin/limits/limit",
        "/admin/limits/limit/delete",
        "/admin/limits/approval",
        "/admin/limits/approval/revoke",
        "/admin/plans/plan",
        "/admin/plans/plan/delete",
        "/admin/plans/assign",
        "/admin/plans/unassign",
    }
)


class FailureLimiter:
    """A budget of failed attempts (bad keys, failed sign-ins) per client: ``limit``
    failures within ``window`` seconds. Past it, that client's *failed* attempts answer
    429 until the window passes; its valid keys still work, so an app or a person behind
    the same address is not locked out by someone else's guessing (check_key adds the
    per-key lock that keeps this from being a guessing oracle).

    Hand-written rather than the ``limits`` package: the rule charges failures only, needs
    the time until the budget returns (Retry-After) and must bound its memory against
    clients that rotate addresses; a deque of at most ``limit`` times per client and at
    most ``max_clients`` clients (the least recently failing forgotten) does all three.
    State is per process, like the server's other caches."""

    def __init__(self, limit: int = 20, window: float = 60.0, max_clients: int = 10_000):
        self.limit = limit
        self.window = window
        self._max = max_clients
        self._lock = threading.Lock()
        self._fails: OrderedDict[str, deque[float]] = OrderedDict()

    def blocked(self, who: str) -> float:
        """Seconds until ``who`` has failure budget again (0: it has)."""
        now = time.monotonic()
        with self._lock:
            times = self._fails.get(who)
            if times is None:
                return 0.0
            while times and now - times[0] >= self.window:
                times.popleft()
            if not times:
                del self._fails[who]
                return 0.0
            if len(times) < self.limit:
                return 0.0
            # the oldest of the last ``limit`` failures leaves the window then
            return max(0.0, self.window - (now - times[0]))

    def failed(self, *who: str) -> None:
        """Charge one failure to each of ``who``. Failures while over budget count too,
        so a client that keeps failing stays refused."""
        now = time.monotonic()
        with self._lock:
            for w in who:
                times = self._fails.get(w)
                if times is None:
                    if len(self._fails) >= self._max:
                        self._fails.popitem(last=False)
                    times = self._fails[w] = deque(maxlen=self.limit)
                else:
                    self._fails.move_to_end(w)
                times.append(now)


def client_of(scope: Scope) -> str:
    """Whose failure budget a request spends: the client address (the real client's when
    a trusted proxy forwarded the request: server/serving.py). An IPv6 client counts by
    its /64, which one host or home usually holds whole, so rotating through its own
    addresses does not buy it more attempts."""
    client = scope.get("client")
    if not client:
        return "unknown"
    host = str(client[0])
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return host


def _too_many(wait: float, what: str) -> TooManyRequests:
    return TooManyRequests(
        f"too many failed {what} from this address; try again in {int(wait) + 1} s",
        headers={"Retry-After": str(int(wait) + 1)},
    )


async def check_key(request: Request, token: str, what: str = "key attempts") -> Principal | None:
    """The principal of ``token``, or None when it is not a valid key, under the failure
    limit (``app.state.auth_limiter``), for API keys and sign-in alike:

    - a client past its failure budget gets 429 for failed attempts only; a valid key
      still works;
    - a key whose secret was guessed ``limit`` times from one client is refused from that
      client for the window, valid or not: the answer must not tell a guesser when it got
      that key right. Other keys from that client, and that key from elsewhere, work.
    """
    svc = services_of(request)
    limiter: FailureLimiter = request.app.state.auth_limiter
    client = client_of(request.scope)
    parts = split_token(token)
    this_key = f"{client} key {parts[1]}" if parts else None
    if this_key is not None:
        wait = limiter.blocked(this_key)
        if wait:
            raise _too_many(wait, what)
    over = limiter.blocked(client)
    found = await run_in_threadpool(svc.keys.principal, token)
    if found is not None:
        return found
    # a key id that exists is being guessed at; other ids only spend the client's budget
    # (and cannot fill the limiter's memory with one entry per made-up id)
    known = parts is not None and await run_in_threadpool(svc.keys.known, parts[1])
    limiter.failed(client, *((this_key,) if this_key and known else ()))
    if over:
        raise _too_many(over, what)
    return None


async def check_jwt(request: Request, token: str, what: str = "key attempts") -> JwtIdentity:
    """The identity a JWT from the operator's identity provider names, or 401 saying what
    is wrong with the token. Refused tokens spend the client's failure budget as bad keys
    do (past it, 429), since each may make the server fetch the provider's keys; a valid
    token works regardless, like a valid key."""
    svc = services_of(request)
    limiter: FailureLimiter = request.app.state.auth_limiter
    client = client_of(request.scope)
    over = limiter.blocked(client)
    try:
        if svc.jwt is None:
            raise JwtRefused(
                "this server does not accept tokens from an identity provider (JWT sign-in"
                " is off); use an API key"
            )
        return await run_in_threadpool(svc.jwt.verify, token)
    except JwtRefused as exc:
        limiter.failed(client)
        if over:
            raise _too_many(over, what) from None
        raise Unauthorized(
            f"the token was refused: {exc}",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from None


async def principal_of_token(request: Request, token: str) -> Principal:
    """The caller a bearer token names: an API key, or a JWT (a token that is no key),
    else 401."""
    if looks_like_jwt(token):
        return (await check_jwt(request, token)).principal
    found = await check_key(request, token)
    if found is None:
        raise Unauthorized(
            "the API key is not valid (revoked or mistyped?)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return found


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
    if rule == CONFIG:
        rule = "read_all" if request.method in ("GET", "HEAD") else "admin"
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
        # what was answered to this caller before this request, and to anyone a moment
        # longer before (or, asked for, everything answered), is what it reads
        began = time.perf_counter()
        await svc.writer.wait_applied(reader=principal.sender, lag=read_lag(request.headers, svc))
        setattr(request.state, STORE_WAIT_MS, (time.perf_counter() - began) * 1000)


CONSISTENCY_HEADER = "tenantscope-consistency"


def read_lag(headers: Headers, svc: Services) -> float:
    """Seconds of others' answered writes a read may miss (``wait_applied``): the server's
    ``read_lag_ms``, or none when the request asks ``Tenantscope-Consistency: strict``."""
    asked = headers.get(CONSISTENCY_HEADER)
    if asked is None:
        return svc.settings.read_lag_ms / 1000.0
    if asked.strip().lower() == "strict":
        return 0.0
    raise BadRequest(
        f"Tenantscope-Consistency: {asked!r} is not known: send 'strict' (the read waits"
        " for every span answered before it), or leave the header out"
    )


async def _principal(request: Request, path: str, svc: Services, use_key: bool) -> Principal | None:
    token = bearer(request.headers) if use_key else None
    if token is not None:
        return await principal_of_token(request, token)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and (request.method in ("GET", "HEAD") or path in _COOKIE_POSTS):
        subject = svc.sessions.read(cookie)
        if subject is None:
            return None
        identity = identity_of_session(subject)
        if identity is not None:
            # a session made from a JWT: it ends when JWT sign-in is turned off or
            # another issuer is configured, as a key's sessions end with the key
            if svc.jwt is None or not svc.jwt.accepts_session(identity):
                return None
            return identity.principal
        return await run_in_threadpool(svc.keys.principal_of_key_id, subject)
    return None
