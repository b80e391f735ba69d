"""The isolation matrix: every route of the app (enumerated from the router, so a new
route is covered, or fails here, automatically) x every kind of caller x own/foreign
tenant parameters, against a real server holding three tenants.

For each request it checks the status the access rules promise and, for tenant callers,
that no other tenant's distinctive strings (ids, names, users, sessions, traces, models,
features, tiers) appear in the body. When a tenant caller names another tenant's object
the answer must be indistinguishable from naming one that does not exist (no existence
oracle): same status, same body once the two ids are blanked.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount, Route

from tenantscope.records import UsageRecord
from tenantscope.server import access
from tenantscope.server.app import create_app
from tenantscope.server.keys import issue_key, new_key
from tenantscope.server.services import Services
from tests.conftest import RunningServer, make_settings, seeded_server

NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
FROM = str(int((NOW - timedelta(days=3)).timestamp()))
TO = str(int((NOW + timedelta(hours=2)).timestamp()))
CSRF = "matrix-csrf-token-0123456789"


# --- the data: three tenants, each with its own distinctive strings ----------------------------
@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    tier: str
    trace_prefix: str  # 8 hex: the first 16 characters of its trace ids are distinctive
    users: tuple[str, ...]
    sessions: tuple[str, ...]
    model: str
    feature: str
    workspace: str

    def trace_ids(self) -> list[str]:
        return [f"{self.trace_prefix}{i + 1:024x}" for i in range(3)]

    @property
    def short_trace(self) -> str:
        """What the traces page shows of an id (its first 16 characters)."""
        return self.trace_ids()[0][:16]

    def strings(self) -> list[str]:
        """Everything that must never reach another tenant's caller."""
        return [
            self.tenant_id,
            self.name,
            self.tier,
            self.short_trace,
            *self.users,
            *self.sessions,
            self.model,
            self.feature,
            self.workspace,
        ]


ACME = Tenant(
    "acme-own",
    "Acme-Own-Corp",
    "acme-gold-tier",
    "acacacac",
    ("acme-user-ann", "acme-user-bo"),
    ("acme-sess-one", "acme-sess-two"),
    "gpt-acme-ft",
    "acme-feature",
    "acme-workspace",
)
GLOBEX = Tenant(
    "globex-foreign",
    "Globex-Foreign-Corp",
    "globex-platinum-tier",
    "b0b0b0b0",
    ("globex-user-zed", "globex-user-yan"),
    ("globex-sess-nine", "globex-sess-ten"),
    "gpt-globex-ft",
    "globex-feature",
    "globex-workspace",
)
INITECH = Tenant(
    "initech-third",
    "Initech-Third-Corp",
    "initech-bronze-tier",
    "1e1e1e1e",
    ("initech-user-pete",),
    ("initech-sess-tps",),
    "gpt-initech-ft",
    "initech-feature",
    "initech-workspace",
)
TENANTS = (ACME, GLOBEX, INITECH)
# Same shapes as real values, but nothing by these ids exists.
MISSING = Tenant(
    "nosuch-tenant",
    "Nosuch-Corp",
    "nosuch-tier",
    "cdcdcdcd",
    ("nosuch-user", "nosuch-user-2"),
    ("nosuch-sess", "nosuch-sess-2"),
    "gpt-nosuch",
    "nosuch-feature",
    "nosuch-workspace",
)


def seed_tenants(svc: Services, tenants: tuple[Tenant, ...] = TENANTS) -> None:
    """Configured tenants with users, sessions and traces (root + LLM call), through the
    real writer. A tenant's records are the same whichever others are seeded with it."""
    records: list[UsageRecord] = []
    for t in tenants:
        n = TENANTS.index(t)
        svc.config.set_tenant(
            t.tenant_id,
            display_name=t.name,
            tier=t.tier,
            sla_p95_ms=2000 + 500 * n,
            monthly_budget_usd=Decimal("100"),
        )
        for i, trace in enumerate(t.trace_ids()):
            start = NOW - timedelta(hours=2 + i, minutes=n)
            end = start + timedelta(milliseconds=800 + 300 * i)
            root = f"{n + 1:02x}{i + 1:014x}"
            user = t.users[i % len(t.users)]
            session = t.sessions[i % len(t.sessions)]
            common: dict[str, Any] = {
                "trace_id": trace,
                "tenant_id": t.tenant_id,
                "user_id": user,
                "session_id": session,
                "feature": t.feature,
                "workspace_id": t.workspace,
                "start_time": start,
                "end_time": end,
                "duration_ms": (end - start).total_seconds() * 1000,
            }
            records.append(
                UsageRecord(event_id=f"{trace}:root", span_id=root, name="POST /chat", **common)
            )
            records.append(
                UsageRecord(
                    event_id=f"{trace}:llm",
                    span_id=f"{n + 1:02x}{i + 1:010x}ffff",
                    parent_span_id=root,
                    name=f"chat {t.model}",
                    kind="llm",
                    provider="openai",
                    model=t.model,
                    input_tokens=1000 + i,
                    output_tokens=100,
                    cost_usd=Decimal("0.01") * (i + 1),
                    cost_source="reported",
                    status="error" if i == 2 else "ok",
                    **common,
                )
            )
    result = svc.writer.write_sync(records)
    assert result.accepted == len(records)


# --- the routes, from the router ---------------------------------------------------------------
@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: frozenset[str]
    query: tuple[str, ...]  # query parameter names (aliases), required ones marked by "!"
    include_in_schema: bool


def _query_params(route: BaseRoute) -> tuple[str, ...]:
    if not isinstance(route, APIRoute):
        return ()
    names: list[str] = []

    def walk(dep: Any) -> None:
        for f in dep.query_params:
            required = f.field_info.is_required()
            names.append(("!" if required else "") + str(getattr(f, "alias", f.name)))
        for sub in dep.dependencies:
            walk(sub)

    walk(route.dependant)
    return tuple(names)


def app_routes(app: FastAPI) -> list[RouteInfo]:
    """Every route the app answers, including those of included routers (FastAPI 0.165
    nests them as ``_IncludedRouter`` objects holding ``original_router``) and mounts."""
    out: list[RouteInfo] = []

    def walk(routes: list[BaseRoute], prefix: str) -> None:
        for r in routes:
            nested = getattr(r, "original_router", None)
            if nested is not None:
                ctx = getattr(r, "include_context", None)
                walk(list(nested.routes), prefix + str(getattr(ctx, "prefix", "") or ""))
            elif isinstance(r, Mount):
                out.append(RouteInfo(prefix + r.path, frozenset({"*"}), (), False))
            elif isinstance(r, (APIRoute, Route)):
                methods = frozenset(r.methods or {"GET"}) - {"HEAD"}
                out.append(
                    RouteInfo(prefix + r.path, methods, _query_params(r), r.include_in_schema)
                )
            else:  # a websocket or anything new: still a route, still needs a rule
                out.append(RouteInfo(prefix + str(getattr(r, "path", r)), frozenset(), (), False))

    walk(list(app.router.routes), "")
    return out


def routes_without_rule(app: FastAPI) -> list[str]:
    return sorted({r.path for r in app_routes(app)} - set(access.RULES))


ROUTES = app_routes(create_app())
ROUTE_PATHS = sorted({r.path for r in ROUTES})

# What each route is, written down here independently of access.RULES, so a rule changed
# by mistake (say /prices opened to tenant keys) fails below.
KIND: dict[str, str] = {
    "/healthz": "public",
    "/readyz": "public",
    "/docs": "public",
    "/openapi.json": "public",
    "/static/{name:path}": "public",
    "/login": "login",
    "/login/jwt": "login_jwt",
    "/logout": "logout",
    "/metrics": "machine_all",
    "/v1/traces": "ingest",
    "/v1/events": "ingest",
    "/api": "api",
    "/api/tenants": "api",
    "/api/tenants/{tenant_id:path}/usage": "api",
    "/api/tenants/{tenant_id:path}": "api",
    "/api/traces": "api",
    "/api/traces/{trace_id}": "api",
    "/api/users": "api",
    "/api/sessions": "api",
    "/api/breakdown": "api",
    "/api/timeseries": "api",
    "/api/sla": "api",
    "/api/tenant-suggestions": "api_all",
    "/api/keys": "admin",
    "/api/keys/{key_id}": "admin",
    "/api/audit": "admin",
    "/api/alerts/rules": "config_api",
    "/api/alerts/rules/{rule_id}": "config_api",
    "/api/alerts/rules/{rule_id}/silence": "config_api",
    "/api/alerts/instances": "config_api",
    "/api/alerts/history": "config_api",
    "/api/alerts/contacts": "config_api",
    "/api/alerts/contacts/{contact_id}": "config_api",
    "/api/alerts/contacts/{contact_id}/test": "config_api",
    "/api/slos": "config_api",
    "/api/slos/{slo_id}": "config_api",
    "/api/slo-status": "api",
    "/api/insights": "api",
    "/api/limits": "config_api",
    "/api/limits/status": "api",
    "/api/limits/approvals": "config_api",
    "/api/limits/approvals/{approval_id}/revoke": "config_api",
    "/api/limits/{limit_id}": "config_api",
    "/api/plans": "config_api",
    "/api/plans/assignments": "config_api",
    "/api/plans/assignments/{assignment_id}": "config_api",
    "/api/plans/{plan_id}": "config_api",
    "/v1/limits/check": "limits",
    "/v1/limits/extend": "limits",
    "/v1/limits/settle": "limits",
    "/v1/limits/release": "limits",
    "/": "page",
    "/tenants": "page_all",
    "/tenant": "page",
    "/traces": "page",
    "/traces/{trace_id}": "page",
    "/users": "page",
    "/sessions": "page",
    "/sla": "page",
    "/insights": "page",
    "/prices": "page_all",
    "/compare": "page_all",
    "/select-tenant": "redirect_all",
    "/admin/tenants": "admin_page",
    "/admin/tenant": "admin_page",
    "/admin/prices": "admin_page",
    "/admin/prices/delete": "admin_form",
    "/admin/keys": "admin_page",
    "/admin/keys/revoke": "admin_form",
    "/audit": "admin_page",
    "/alerts": "page_all",
    "/alerts/rule": "page_all_item",
    "/admin/alerts/rule": "admin_item",
    "/admin/alerts/rule/delete": "admin_form",
    "/admin/alerts/silence": "admin_form",
    "/admin/alerts/contact": "admin_item",
    "/admin/alerts/contact/delete": "admin_form",
    "/admin/alerts/contact/test": "admin_form",
    "/limits": "page_all",
    "/admin/limits/limit": "admin_item",
    "/admin/limits/limit/delete": "admin_form",
    "/admin/limits/approval": "admin_page",
    "/admin/limits/approval/revoke": "admin_form",
    "/plans": "page_all",
    "/admin/plans/plan": "admin_item",
    "/admin/plans/plan/delete": "admin_form",
    "/admin/plans/assign": "admin_page",
    "/admin/plans/unassign": "admin_form",
}
# What an admin's form submission with an empty form (but the right CSRF token) gets.
EMPTY_FORM_STATUS = {
    "/admin/tenant": 422,  # no tenant id
    "/admin/prices": 422,  # no model, no price
    "/admin/keys": 422,  # no role
    "/admin/prices/delete": 303,  # nothing to remove: said on the page it leads to
    "/admin/keys/revoke": 404,  # no such key
    "/admin/alerts/rule": 422,  # no name, no threshold
    "/admin/alerts/rule/delete": 404,  # no such rule: said on the alerts page
    "/admin/alerts/silence": 404,  # no such rule
    "/admin/alerts/contact": 422,  # no name
    "/admin/alerts/contact/delete": 404,  # no such contact point
    "/admin/alerts/contact/test": 404,  # no such contact point
    "/admin/limits/limit": 422,  # no name, no kind
    "/admin/limits/limit/delete": 404,  # no such limit: said on the limits page
    "/admin/limits/approval": 422,  # no limit, no tenant, no end
    "/admin/limits/approval/revoke": 404,  # no such approval
    "/admin/plans/plan": 422,  # no name
    "/admin/plans/plan/delete": 404,  # no such plan: said on the plans page
    "/admin/plans/assign": 422,  # no tenant, no plan, no start
    "/admin/plans/unassign": 404,  # no such assignment
}
RULE_OF_KIND = {
    "public": access.PUBLIC,
    "login": access.PUBLIC,
    "login_jwt": access.PUBLIC,
    "logout": access.PUBLIC,
    "machine_all": "read_all",
    "api_all": "read_all",
    "ingest": "ingest",
    "limits": "ingest",
    "api": "read",
    "admin": "admin",
    "config_api": access.CONFIG,
    "page": "read",
    "page_all": "read_all",
    "redirect_all": "read_all",
    "admin_page": "admin",
    "admin_form": "admin",
    "admin_item": "admin",
    "page_all_item": "read_all",
}


def test_every_route_has_an_access_rule() -> None:
    assert len(ROUTE_PATHS) >= 30, ROUTE_PATHS  # the walk found the included routers
    assert routes_without_rule(create_app()) == []
    # and no rule names a route that no longer exists (a stale rule hides a renamed route)
    assert sorted(set(access.RULES) - set(ROUTE_PATHS)) == []


def test_every_route_is_in_this_matrix_with_the_rule_it_promises() -> None:
    assert sorted(KIND) == ROUTE_PATHS, "a route was added or removed: add it to KIND"
    wrong = {p: access.RULES.get(p) for p in KIND if access.RULES.get(p) != RULE_OF_KIND[KIND[p]]}
    assert wrong == {}


def test_a_route_added_without_a_rule_is_reported_and_refused(tmp_path: Path) -> None:
    from fastapi import APIRouter
    from starlette.testclient import TestClient

    svc = Services.open(make_settings(tmp_path / "data", duckdb_threads=1))
    try:
        app = create_app(services=svc)
        extra = APIRouter(prefix="/api/extra")

        @extra.get("/leak/{tenant_id}")
        def leak(tenant_id: str) -> dict[str, str]:
            return {"tenant_id": tenant_id}

        app.include_router(extra)

        @app.get("/direct-new")
        def direct() -> dict[str, str]:
            return {}

        assert routes_without_rule(app) == ["/api/extra/leak/{tenant_id}", "/direct-new"]
        # and the app fails closed on them, whoever asks
        token = issue_key(svc.config, "admin", "t")[1]
        client = TestClient(app)
        for path in ("/api/extra/leak/acme", "/direct-new"):
            resp = client.get(path, headers={"authorization": f"Bearer {token}"})
            assert resp.status_code == 403, resp.text
            assert "no access rule" in resp.json()["error"]["message"]
    finally:
        svc.close()


# --- callers -----------------------------------------------------------------------------------
@dataclass
class Caller:
    name: str
    role: str | None  # None: nobody
    tenant: Tenant | None = None  # tenant keys and bound ingest keys
    token: str = ""
    key_id: str = ""
    session: str = ""  # a signed-in dashboard session cookie instead of the key

    @property
    def own(self) -> Tenant:
        return self.tenant or ACME

    @property
    def foreign(self) -> Tenant:
        return GLOBEX if self.own is not GLOBEX else ACME

    @property
    def reads_one_tenant(self) -> bool:
        return self.role == "tenant"

    def headers(self) -> dict[str, str]:
        cookie = f"ts_csrf={CSRF}"
        if self.session:
            return {"cookie": f"{cookie}; ts_session={self.session}"}
        out = {"cookie": cookie}
        if self.token:
            out["authorization"] = f"Bearer {self.token}"
        return out


@dataclass
class Matrix:
    srv: RunningServer
    callers: list[Caller]
    client: httpx.Client
    failures: list[str] = field(default_factory=list)


def _make_caller(srv: RunningServer, name: str, role: str | None, tenant: Tenant | None) -> Caller:
    if role is None:
        return Caller(name, None)
    key, token = issue_key(srv.services.config, role, name, tenant.tenant_id if tenant else None)
    return Caller(name, role, tenant, token, key.key_id)


def _signed_in(client: httpx.Client, caller: Caller, name: str) -> Caller:
    """The same key, signed in through the real form: the session cookie it got."""
    resp = client.post(
        "/login",
        data={"key": caller.token, "csrf": CSRF, "next": "/"},
        headers={"cookie": f"ts_csrf={CSRF}"},
    )
    assert resp.status_code == 303, resp.text
    session = resp.cookies.get("ts_session")
    client.cookies.clear()
    assert session
    return Caller(name, caller.role, caller.tenant, caller.token, caller.key_id, session)


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    with seeded_server(tmp_path_factory.mktemp("matrix") / "data", seed_tenants) as srv:
        # its own loopback address: the failed sign-ins of the matrix (ingest keys)
        # count against this address only
        transport = httpx.HTTPTransport(local_address="127.0.0.7")
        with httpx.Client(
            base_url=srv.url, transport=transport, timeout=30, follow_redirects=False
        ) as client:
            callers = [
                _make_caller(srv, "nobody", None, None),
                _make_caller(srv, "admin", "admin", None),
                _make_caller(srv, "reader", "reader", None),
                _make_caller(srv, "ingest", "ingest", None),
                _make_caller(srv, "ingest-bound", "ingest", ACME),
                _make_caller(srv, "tenant-acme", "tenant", ACME),
                _make_caller(srv, "tenant-globex", "tenant", GLOBEX),
            ]
            by_name = {c.name: c for c in callers}
            callers.append(_signed_in(client, by_name["admin"], "admin-session"))
            callers.append(_signed_in(client, by_name["tenant-acme"], "tenant-acme-session"))
            yield Matrix(srv, callers, client)


# --- the requests ------------------------------------------------------------------------------
@dataclass
class Probe:
    method: str
    path: str  # the URL path, parameters filled in and quoted
    params: dict[str, str]
    variant: str  # "plain", "own:<what>", "foreign:<what>"
    body: dict[str, Any] = field(default_factory=dict)  # httpx keyword arguments
    # for tenant callers naming a foreign object: the same request naming a missing one,
    # and the (foreign, missing) value pairs to blank out when comparing the answers
    twin: Probe | None = None
    swaps: tuple[tuple[str, str], ...] = ()


FILTERS = {  # query parameter -> which value of a tenant it takes
    "tenant_id": "tenant_id",
    "tenant": "tenant_id",
    "id": "tenant_id",
    "user_id": "user",
    "user": "user",
    "session_id": "session",
    "session": "session",
    "q": "name",
    "model": "model",
    "feature": "feature",
    "tier": "tier",
}
BREAKDOWN_BY = ("tenant", "user", "model", "feature", "workspace")


def _value(t: Tenant, what: str) -> str:
    return {
        "tenant_id": t.tenant_id,
        "user": t.users[0],
        "session": t.sessions[0],
        "name": t.name,
        "model": t.model,
        "feature": t.feature,
        "tier": t.tier,
        "trace_id": t.trace_ids()[0],
    }[what]


def _fill(path: str, t: Tenant, key_id: str) -> str:
    return (
        path.replace("{tenant_id:path}", quote(t.tenant_id, safe=""))
        .replace("{trace_id}", t.trace_ids()[0])
        .replace("{key_id}", key_id)
        .replace("{rule_id}", "1")
        .replace("{contact_id}", "1")
        .replace("{slo_id}", "1")
        .replace("{limit_id}", "1")
        .replace("{approval_id}", "1")
        .replace("{plan_id}", "1")
        .replace("{assignment_id}", "1")
        .replace("{name:path}", "app.css")
    )


def _swaps(t: Tenant) -> tuple[tuple[str, str], ...]:
    return tuple(zip(t.strings(), MISSING.strings(), strict=True)) + (
        (t.trace_ids()[0], MISSING.trace_ids()[0]),
    )


def _ingest_body(path: str, t: Tenant | None, n: int) -> dict[str, Any]:
    tenant = t.tenant_id if t else ""
    label = tenant or "none"
    if path == "/v1/events":
        return {
            "json": [
                {
                    "event_id": f"matrix-{label}-{n}",
                    "tenant_id": tenant,
                    "user_id": t.users[0] if t else "",
                    "model": t.model if t else "gpt-4o",
                    "input_tokens": 10,
                    "output_tokens": 1,
                    "timestamp": (NOW - timedelta(hours=1)).isoformat(),
                }
            ]
        }
    attrs = [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}}]
    if tenant:
        attrs.append({"key": "tenant.id", "value": {"stringValue": tenant}})
    start = int((NOW - timedelta(hours=1)).timestamp() * 1e9)
    span = {
        "traceId": f"{'ab' * 12}{n:08x}",
        "spanId": f"{n:016x}",
        "name": "chat",
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 5_000_000),
        "attributes": attrs,
    }
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    return {"content": json.dumps(body), "headers": {"content-type": "application/json"}}


def probes(route: RouteInfo, caller: Caller, m: Matrix) -> list[Probe]:
    own, foreign = caller.own, caller.foreign
    out: list[Probe] = []
    for method in sorted(route.methods):
        if route.path == "/api/keys/{key_id}":
            # a fresh key to revoke for every request (admin really revokes it)
            victim, _ = new_key("reader", "victim")
            m.srv.services.config.add_api_key(victim)
            out.append(Probe(method, _fill(route.path, own, victim.key_id), {}, "plain"))
            continue
        if route.path in ("/v1/traces", "/v1/events"):
            for n, (variant, t) in enumerate((("own", own), ("foreign", foreign), ("none", None))):
                body = _ingest_body(route.path, t, n + 1)
                out.append(Probe(method, route.path, {}, f"{variant}:data", body))
            continue
        if route.path.startswith("/v1/limits/"):
            if route.path == "/v1/limits/check":
                for variant, t in (("own", own), ("foreign", foreign)):
                    body = {"json": {"tenant_id": t.tenant_id, "model": t.model}}
                    out.append(Probe(method, route.path, {}, f"{variant}:data", body))
            else:  # a reservation that does not exist
                body = {"json": {"reservation_id": "r_missing", "output_tokens": 1}}
                if route.path == "/v1/limits/release":
                    body = {"json": {"reservation_id": "r_missing"}}
                out.append(Probe(method, route.path, {}, "plain", body))
            continue
        if route.path == "/api/keys" and method == "POST":
            body = {"json": {"role": "tenant", "tenant_id": own.tenant_id, "name": "m"}}
            out.append(Probe(method, route.path, {}, "plain", body))
            continue
        if route.path in EMPTY_FORM_STATUS and method == "POST":
            out.append(Probe(method, route.path, {}, "plain", {"data": {"csrf": CSRF}}))
            continue
        if route.path in ("/login", "/logout") and method == "POST":
            form = {"csrf": CSRF, "next": "/traces"}
            if route.path == "/login":
                form["key"] = caller.token
            out.append(Probe(method, route.path, {}, "plain", {"data": form}))
            continue
        # the time range where the route takes one (others refuse unknown parameters)
        base = {"from": FROM, "to": TO} if "from" in route.query else {}
        required = [q[1:] for q in route.query if q.startswith("!")]
        optional = [q for q in route.query if not q.startswith("!")]
        has_path_tenant = "{" in route.path and "{name:path}" not in route.path
        # the plain request: required parameters with own values
        plain_sets: list[dict[str, str]] = [dict(base)]
        if "by" in required:
            plain_sets = [{**base, "by": by} for by in BREAKDOWN_BY]
        if "group_by" in optional:
            # with a required ``by``: the comparison (breakdown by feature per tenant)
            by = {"by": "feature"} if "by" in required else {}
            plain_sets.append({**base, **by, "group_by": "tenant"})
        if "format" in optional:
            # the page's table as CSV: the same rule, and no other tenant's rows in it
            table = {"table": "model"} if route.path == "/tenant" else {}
            plain_sets.append({**base, "format": "csv", **table})
        for ps in plain_sets:
            if "tenant_id" in required:
                ps["tenant_id"] = own.tenant_id
            out.append(Probe(method, _fill(route.path, own, caller.key_id), ps, "plain"))
        # path parameters naming a foreign object
        if has_path_tenant:
            p = Probe(method, _fill(route.path, foreign, ""), dict(base), "foreign:path")
            p.twin = Probe(method, _fill(route.path, MISSING, ""), dict(base), "missing:path")
            p.swaps = _swaps(foreign)
            out.append(p)
        # each filter, with an own and a foreign value
        for name in [*required, *optional]:
            what = FILTERS.get(name)
            if what is None:
                continue
            extra = {"by": "tenant"} if "by" in required else {}
            for variant, t in (("own", own), ("foreign", foreign)):
                p = Probe(
                    method,
                    _fill(route.path, own, caller.key_id),
                    {**base, **extra, name: _value(t, what)},
                    f"{variant}:{name}",
                )
                if variant == "foreign":
                    p.twin = Probe(p.method, p.path, {**p.params, name: _value(MISSING, what)}, "")
                    p.swaps = _swaps(foreign)
                out.append(p)
    return out


# --- what each caller must get -----------------------------------------------------------------
def expected_status(kind: str, route: RouteInfo, probe: Probe, c: Caller) -> int | set[int]:
    role, session = c.role, bool(c.session)
    reads = role in ("admin", "reader", "tenant")
    writes = probe.method not in ("GET", "HEAD")
    if kind == "public":
        return 200
    if kind == "login":
        if probe.method == "GET":
            # a signed-in session is sent on; a key header is not looked at on public
            # routes (a stale key must not fail them), so key callers see the form
            return 303 if reads and session else 200
        return 303 if reads else 401  # an ingest key (or none) cannot sign in
    if kind == "logout":
        return 303
    if kind == "login_jwt":
        # JWT sign-in is off on this server (tests/server/test_jwt*.py turn it on); the
        # form is CSRF-checked first
        return 404 if probe.method == "GET" else 403
    if kind in ("admin_page", "admin_form", "admin_item"):
        if probe.method == "POST":
            # the dashboard's own forms take the session cookie (and check its CSRF token)
            if role is None:
                return 401
            return EMPTY_FORM_STATUS[route.path] if role == "admin" else 403
        if role is None:
            return 303  # to the sign-in page
        if role != "admin":
            return 403
        # a form for a new object without ?id=, for that object's edit with it: the
        # matrix's ids (tenant ids) are not numbers
        return 400 if kind == "admin_item" and "id" in probe.params else 200
    if role is None or (session and writes):
        # cookies are for reading and the dashboard's own forms only: no CSRF via /api
        if kind in ("page", "page_all", "page_all_item", "redirect_all") and not writes:
            return 303
        return 401
    if kind == "ingest":
        if role not in ("admin", "ingest"):
            return 403
        if c.tenant is not None and probe.variant == "foreign:data" and route.path == "/v1/events":
            return 400  # every event of the batch is another tenant's: refused, clearly
        return 200
    if kind == "limits":  # decisions: ingest keys (a bound one for its own tenant only)
        if role not in ("admin", "ingest"):
            return 403
        if route.path == "/v1/limits/check":
            return 403 if c.tenant is not None and probe.variant == "foreign:data" else 200
        return 200 if route.path == "/v1/limits/release" else 404
    if kind == "admin":
        if role != "admin":
            return 403
        return 201 if probe.method == "POST" else 200
    if kind == "config_api":  # alert rules: readers read, admins write
        if not writes:
            if role not in ("admin", "reader"):
                return 403
            # rule 1 / contact point 1 exist until an admin's DELETE probe removes them
            return {200, 404} if "{" in route.path else 200
        if role != "admin":
            return 403
        # an empty body or an id that does not exist: said what to fix
        return {200, 201, 204, 404, 409, 422}
    if kind in ("machine_all", "api_all", "page_all"):
        return 200 if role in ("admin", "reader") else 403
    if kind == "page_all_item":  # one alert rule's page: ?id= (required) names it
        if role not in ("admin", "reader"):
            return 403
        # without an id, or with the matrix's (tenant ids, not numbers): said what to fix
        return 400
    if kind == "redirect_all":  # the tenant selector answers with the page to go to
        return 303 if role in ("admin", "reader") else 403
    if not reads:
        return 403  # ingest keys cannot read
    if role != "tenant":
        if route.path == "/" and "tenant_id" in probe.params:
            return 303  # one tenant's overview is its tenant page
        return 200
    # a tenant caller
    if route.path == "/":
        return 303  # its overview is its own tenant page
    if probe.variant in ("foreign:path", "foreign:id"):
        return 404  # never 403: no existence oracle
    if probe.variant == "foreign:tenant_id" and route.path in (
        "/api/breakdown",
        "/api/timeseries",
        "/tenant",  # the tenant page: the tenant it shows
        "/sla",  # one tenant's SLA
        "/api/slo-status",  # one tenant's error budgets
        "/api/insights",  # one tenant's anomalies
        "/insights",
        "/api/limits/status",  # one tenant's limits
    ):
        return 404
    return 200


def _blank(text: str, swaps: tuple[tuple[str, str], ...]) -> str:
    for a, b in swaps:
        text = text.replace(a, "\x00").replace(b, "\x00")
        text = text.replace(quote(a, safe=""), "\x00").replace(quote(b, safe=""), "\x00")
    return text


def _tenant_ids_in(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "tenant_id" and isinstance(v, str):
                found.add(v)
            found |= _tenant_ids_in(v)
    elif isinstance(value, list):
        for v in value:
            found |= _tenant_ids_in(v)
    return found


def _send(m: Matrix, p: Probe, c: Caller) -> httpx.Response:
    if p.path == "/logout" and c.session:
        # signing out ends the session on the server: do it with a session of its own,
        # so the caller's stays valid for the other routes
        c = _signed_in(m.client, c, c.name)
    headers = {**c.headers(), **p.body.get("headers", {})}
    kwargs = {k: v for k, v in p.body.items() if k != "headers"}
    resp = m.client.request(p.method, p.path, params=p.params, headers=headers, **kwargs)
    m.client.cookies.clear()
    return resp


def check(m: Matrix, route: RouteInfo, c: Caller, p: Probe) -> list[str]:
    kind = KIND[route.path]
    resp = _send(m, p, c)
    what = f"{c.name} {p.method} {p.path} {p.params} [{p.variant}]"
    problems: list[str] = []
    want = expected_status(kind, route, p, c)
    wanted = want if isinstance(want, set) else {want}
    if resp.status_code not in wanted:
        return [f"{what}: {resp.status_code}, expected {want}: {resp.text[:200]}"]
    if resp.status_code == 303:
        location = resp.headers["location"]
        if c.role is None and kind in (
            "page",
            "page_all",
            "page_all_item",
            "admin_page",
            "admin_item",
            "redirect_all",
        ):
            if not location.startswith("/login?next="):
                problems.append(f"{what}: redirected to {location}")
        if kind == "page" and c.role == "tenant" and route.path == "/" and c.tenant:
            want_loc = f"/tenant?tenant_id={c.tenant.tenant_id}"
            if not location.startswith(want_loc):
                problems.append(f"{what}: redirected to {location}, not {want_loc}")
        if kind == "login" and p.method == "POST" and location != "/traces":
            problems.append(f"{what}: sign-in sent to {location}")
    if kind == "ingest" and c.role == "ingest" and c.tenant and p.variant == "foreign:data":
        text = resp.text
        if c.tenant.tenant_id not in text or "only" not in text:
            problems.append(f"{what}: the refusal does not say why: {text[:300]}")
        if route.path == "/v1/traces" and '"rejectedSpans":1' not in text.replace(" ", ""):
            problems.append(f"{what}: foreign span not counted as rejected: {text[:300]}")
    if c.role != "tenant" or kind == "ingest":
        return problems
    # a tenant caller: nothing of any other tenant, unless the request itself named it
    assert c.tenant is not None
    body = resp.text
    echoed = {s for s in c.foreign.strings() if s in json.dumps([p.path, p.params])}
    for other in TENANTS:
        if other is c.tenant:
            continue
        for s in other.strings():
            if s in echoed:
                continue
            if s in body:
                problems.append(f"{what}: body shows {other.tenant_id}'s {s!r}")
    if resp.headers.get("content-type", "").startswith("application/json"):
        ids = _tenant_ids_in(resp.json()) - {c.tenant.tenant_id, ""}
        if ids:
            problems.append(f"{what}: rows of tenants {sorted(ids)}")
        if p.params.get("by") == "tenant" and resp.status_code == 200:
            keys = {i["key"] for i in resp.json()["items"]} - {c.tenant.tenant_id}
            if keys:
                problems.append(f"{what}: breakdown by tenant shows {sorted(keys)}")
    if p.twin is not None:
        twin = _send(m, p.twin, c)
        if twin.status_code != resp.status_code:
            problems.append(
                f"{what}: {resp.status_code}, but {twin.status_code} for a missing id: an oracle"
            )
        elif _blank(body, p.swaps) != _blank(twin.text, p.swaps):
            problems.append(f"{what}: answers differently than for a missing id")
    return problems


@pytest.mark.parametrize("path", ROUTE_PATHS)
def test_route_for_every_caller(matrix: Matrix, path: str) -> None:
    problems: list[str] = []
    for route in [r for r in ROUTES if r.path == path]:
        for caller in matrix.callers:
            for probe in probes(route, caller, matrix):
                problems += check(matrix, route, caller, probe)
    matrix.failures += problems
    assert not problems, "\n".join(problems)


def test_the_leak_check_can_see_leaks(matrix: Matrix) -> None:
    """Admin and reader answers do hold every tenant's strings: the matrix above would
    notice them in a tenant caller's answer."""
    reader = next(c for c in matrix.callers if c.name == "reader")
    bodies = ""
    for path, params in (
        ("/api/tenants", {}),
        ("/api/traces", {}),
        ("/api/users", {}),
        ("/api/sessions", {}),
        ("/api/breakdown", {"by": "model"}),
        ("/api/breakdown", {"by": "feature"}),
        ("/api/breakdown", {"by": "workspace"}),
        ("/api/sla", {}),
        ("/traces", {}),
    ):
        resp = _send(matrix, Probe("GET", path, {"from": FROM, "to": TO, **params}, ""), reader)
        assert resp.status_code == 200, resp.text
        bodies += resp.text
    for t in TENANTS:
        missing = [s for s in t.strings() if s not in bodies]
        assert missing == [], f"{t.tenant_id}: {missing}"


def test_tenant_lists_hold_their_own_rows(matrix: Matrix) -> None:
    """Not just 'no foreign rows': a tenant key sees its own data in full."""
    caller = next(c for c in matrix.callers if c.name == "tenant-acme")
    for path, field_, expected in (
        ("/api/traces", "trace_id", set(ACME.trace_ids())),
        ("/api/users", "id", set(ACME.users)),
        ("/api/sessions", "id", set(ACME.sessions)),
        ("/api/tenants", "tenant_id", {ACME.tenant_id}),
    ):
        resp = _send(matrix, Probe("GET", path, {"from": FROM, "to": TO}, ""), caller)
        assert resp.status_code == 200, resp.text
        got = {str(i[field_]) for i in resp.json()["items"]}
        assert expected <= got, (path, got)


# --- non-interference: what a tenant sees does not depend on the other tenants ------------------
@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Matrix, Matrix]]:
    """Two fresh servers: one holding all three tenants, one holding only acme's (the
    same records). The same acme tenant key is valid on both."""
    key, token = new_key("tenant", "twin", ACME.tenant_id)
    out: list[Matrix] = []
    with contextlib.ExitStack() as stack:
        for name, tenants in (("full", TENANTS), ("solo", (ACME,))):

            def seed(svc: Services, tenants: tuple[Tenant, ...] = tenants) -> None:
                seed_tenants(svc, tenants)
                svc.config.add_api_key(key)

            srv = stack.enter_context(seeded_server(tmp_path_factory.mktemp(name) / "data", seed))
            client = stack.enter_context(httpx.Client(base_url=srv.url, timeout=30))
            caller = Caller("tenant-acme", "tenant", ACME, token, key.key_id)
            out.append(Matrix(srv, [caller], client))
        yield out[0], out[1]


def test_a_tenant_sees_the_same_whatever_other_tenants_exist(
    twins: tuple[Matrix, Matrix],
) -> None:
    """Strings are not the only leak: counts, totals, shares, pagers and chart scales must
    not change with other tenants' data either. Every read a tenant key can make answers
    byte for byte the same on a server with other tenants as on one without."""
    full, solo = twins
    caller = full.callers[0]
    compared = 0
    problems: list[str] = []
    for route in ROUTES:
        if route.methods != {"GET"} or KIND[route.path] in ("public", "login"):
            continue
        for probe in probes(route, caller, full):
            if probe.variant.startswith("foreign"):
                continue  # the matrix compares those with missing ids
            a, b = _send(full, probe, caller), _send(solo, probe, caller)
            body_a = a.text.replace(full.srv.url, "<server>")
            body_b = b.text.replace(solo.srv.url, "<server>")
            compared += 1
            if (a.status_code, body_a) != (b.status_code, body_b):
                at = next(
                    (i for i, (x, y) in enumerate(zip(body_a, body_b, strict=False)) if x != y),
                    min(len(body_a), len(body_b)),
                )
                problems.append(
                    f"{probe.path} {probe.params}: {a.status_code} vs {b.status_code}:"
                    f" ...{body_a[max(0, at - 80) : at + 80]!r}"
                    f" vs ...{body_b[max(0, at - 80) : at + 80]!r}"
                )
    assert compared > 40
    assert not problems, "\n".join(problems)
