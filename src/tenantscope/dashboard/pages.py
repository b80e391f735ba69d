"""The dashboard's pages. Each handler reads its filters from the URL, asks the query
layer (with the caller's Scope, exactly as the JSON API does) and renders a template."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tenantscope.alerts import insights
from tenantscope.alerts.slo import SloStatus
from tenantscope.alerts.slo import status as slo_status
from tenantscope.dashboard import alert_views, charts, downloads, limit_views, plan_views
from tenantscope.dashboard.csv_export import wants_csv
from tenantscope.dashboard.ranges import PRESETS, PickedRange, pick
from tenantscope.dashboard.render import NO_TENANT, pages
from tenantscope.errors import BadRequest
from tenantscope.pricing.catalog import catalog_price, catalog_version
from tenantscope.pricing.pricer import override_covers
from tenantscope.query.models import ModelRow, SlaRow, TraceDetail
from tenantscope.query.queries import Queries
from tenantscope.query.scope import Scope
from tenantscope.query.traces import TRACE_STATUSES
from tenantscope.server.routes_api import get_queries, get_scope
from tenantscope.server.services import services_of
from tenantscope.server.strict_params import reject_unknown_params
from tenantscope.storage.alert_state import Slo
from tenantscope.storage.base import PriceOverride

ScopeDep = Annotated[Scope, Depends(get_scope)]
QueriesDep = Annotated[Queries, Depends(get_queries)]
RangeQ = Annotated[str | None, Query(alias="range")]
FromQ = Annotated[str | None, Query(alias="from")]
ToQ = Annotated[str | None, Query(alias="to")]
# ``format=csv``: the page's table as a CSV download (dashboard/downloads.py)
FormatQ = Annotated[str | None, Query(alias="format")]
PAGE_SIZE = 50
# A page's queries are independent: run them side by side (DuckDB releases the GIL). The
# pool is fixed, so each worker keeps one store cursor for the life of the process.
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tenantscope-page")


def _gather(**calls: Callable[[], Any]) -> dict[str, Any]:
    """Run the calls concurrently; the first error (e.g. NotFound) is raised as is."""
    futures = {name: _POOL.submit(call) for name, call in calls.items()}
    return {name: f.result() for name, f in futures.items()}


TENANT_COLUMNS = (
    ("tenant", "Tenant"),
    ("sessions", "Sessions"),
    ("traces", "Traces"),
    ("requests", "Requests"),
    ("tokens", "Tokens"),
    ("cost", "Cost"),
    ("errors", "Errors"),
    ("p95", "p95"),
    ("last_seen", "Last seen"),
)


def _html(request: Request) -> None:
    """Errors on dashboard routes render as pages, not JSON (see server/errors.py)."""
    request.state.html = True


# Pages take the API's parameter names and, like the API, refuse any other.
router = APIRouter(
    include_in_schema=False, dependencies=[Depends(_html), Depends(reject_unknown_params)]
)


def _picked(range_: RangeQ = None, start: FromQ = None, end: ToQ = None) -> PickedRange:
    """The page's time range from the URL: ``range=24h`` or ``from``/``to``."""
    return pick(range_, start, end)


PickedDep = Annotated[PickedRange, Depends(_picked)]
# Set by the filter forms (a hidden field): the submission is answered with its canonical URL.
FormQ = Annotated[str | None, Query(alias="form")]


def _canonical(request: Request) -> RedirectResponse:
    """A filter form's submission as the URL a link would use. A browser sends every box of
    a form, the empty ones as ``name=``; in a URL, ``tenant_id=`` (present, empty) names
    the tenant "" (spans sent without one). So here an empty box means "no filter" and is
    left out, and the tenant box names the tenant "" by its label, "(no tenant)"."""
    params: list[tuple[str, str]] = []
    for key, value in request.query_params.multi_items():
        if key == "form":
            continue
        if key == "tenant_id" and value == NO_TENANT:
            params.append((key, ""))
        elif value != "":
            params.append((key, value))
    query = "?" + urlencode(params) if params else ""
    return RedirectResponse(request.url.path + query, status_code=303)


def _alerts_firing(
    request: Request, queries: Queries, tenant_id: str | None = None
) -> list[alert_views.InstanceRow]:
    """The firing alerts a page's banner lists (with ``tenant_id``: that tenant's), for
    callers that see every tenant only: a tenant key's pages name no rule."""
    principal = getattr(request.state, "principal", None)
    if principal is None or not principal.can("read_all"):
        return []
    return alert_views.firing_banner(queries.config.alerts, tenant_id)


def _page(
    request: Request, template: str, picked: PickedRange, nav: str, **values: Any
) -> HTMLResponse:
    """A page with the range picker and the navigation marked at ``nav``."""
    return pages.render(request, template, picked=picked, presets=list(PRESETS), nav=nav, **values)


@router.get("/")
def overview(
    request: Request,
    scope: ScopeDep,
    queries: QueriesDep,
    picked: PickedDep,
    tenant_id: str | None = None,
) -> Response:
    principal = getattr(request.state, "principal", None)
    if principal is not None and principal.role == "tenant":
        tenant_id = principal.tenant_id
    if tenant_id is not None:
        # one tenant's overview is its tenant page (a tenant key's, or the one selected)
        return RedirectResponse(
            "/tenant?" + urlencode({"tenant_id": tenant_id, **picked.params()}),
            status_code=303,
        )
    if not queries.has_data(scope):
        return _page(request, "empty.html", picked, "overview")
    rng = picked.rng
    got = _gather(
        totals=lambda: queries.totals(scope, rng, sessions=False),
        previous=lambda: queries.totals(scope, rng.previous(), sessions=False),
        cost=lambda: queries.timeseries(
            scope, rng, "cost", picked.interval, group_by="tenant", limit=6
        ),
        top=lambda: queries.tenants(scope, rng, sort="cost", limit=8),
        breakdowns=lambda: queries.breakdowns(scope, rng, ("model", "provider"), limit=8),
        active=lambda: queries.active_tenants(scope, rng),
        active_before=lambda: queries.active_tenants(scope, rng.previous()),
        alerts=lambda: _alerts_firing(request, queries),
    )
    return _page(
        request,
        "overview.html",
        picked,
        "overview",
        totals=got["totals"],
        previous=got["previous"],
        active=got["active"],
        active_before=got["active_before"],
        cost_chart=charts.series_chart(got["cost"], "cost (USD)", money=True),
        top=got["top"].items,
        models=got["breakdowns"]["model"],
        providers=got["breakdowns"]["provider"],
        alerts_firing=got["alerts"],
    )


@router.get("/tenants")
def tenants(
    request: Request,
    scope: ScopeDep,
    queries: QueriesDep,
    picked: PickedDep,
    q: str | None = None,
    tenant_id: str | None = None,
    sort: str | None = None,
    order: str | None = None,
    cursor: str | None = None,
    fmt: FormatQ = None,
) -> Response:
    sort = sort or "cost"  # the query layer refuses an unknown one
    order = order or ("asc" if sort == "tenant" else "desc")
    filters = {"q": q, "tenant_id": tenant_id, "sort": sort, "order": order}
    if wants_csv(fmt):
        return downloads.tenants(queries, scope, picked, **filters)
    page = queries.tenants(scope, picked.rng, limit=PAGE_SIZE, cursor=cursor, **filters)
    # calls refused by a limit in the list's range, per tenant of this page and limit
    blocked = queries.windows.blocks(scope, picked.rng, [r.tenant_id for r in page.items])
    return _page(
        request,
        "tenants.html",
        picked,
        "tenants",
        page=page,
        blocked=blocked,
        q=q or "",
        sort=sort,
        order=order,
        cursor=cursor,
        columns=TENANT_COLUMNS,
    )


@router.get("/tenant")
def tenant(
    request: Request,
    scope: ScopeDep,
    queries: QueriesDep,
    tenant_id: str,
    picked: PickedDep,
    fmt: FormatQ = None,
    table: Annotated[str | None, Query(description="with format=csv: which breakdown")] = None,
) -> Response:
    rng = picked.rng
    if wants_csv(fmt, table):
        if table not in downloads.TENANT_TABLES:
            raise BadRequest(f"table must be one of {', '.join(downloads.TENANT_TABLES)}")
        return downloads.breakdown(queries, scope, picked, table, tenant_id)
    detail = queries.tenant(scope, tenant_id, rng)  # NotFound for another tenant's id
    got = _gather(
        cost=lambda: queries.timeseries(scope, rng, "cost", picked.interval, tenant_id=tenant_id),
        requests=lambda: queries.timeseries(
            scope, rng, "requests", picked.interval, tenant_id=tenant_id
        ),
        breakdowns=lambda: queries.breakdowns(
            scope,
            rng,
            ("model", "provider", "feature", "user", "workspace", "customer"),
            tenant_id=tenant_id,
            limit=8,
        ),
        sla=lambda: queries.sla(scope, rng, tenant_id=tenant_id),
        users=lambda: queries.users(scope, rng, tenant_id=tenant_id, sort="cost", limit=10),
        sessions=lambda: queries.sessions(scope, rng, tenant_id=tenant_id, limit=10),
        alerts=lambda: _alerts_firing(request, queries, tenant_id),
        # the last day's anomalies and biggest risers (alerts/insights.py), as of now
        anomalies=lambda: insights.anomalies(
            queries, scope, datetime.now(timezone.utc), hours=24, tenant_id=tenant_id, explain=5
        ),
        risers=lambda: insights.risers(queries, scope, tenant_id, datetime.now(timezone.utc)),
        # its limits now, as /api/limits/status answers them (a tenant key: its own only)
        limits=lambda: limit_views.of_tenant(request, tenant_id),
        # its plan now, for admins and readers (a tenant key: none, see plan_views)
        plan=lambda: plan_views.of_tenant(request, tenant_id),
    )
    breakdowns = got["breakdowns"]
    # end customers get a card of their own (linking to their traces), not a generic one
    customers = breakdowns.pop("customer")
    return _page(
        request,
        "tenant.html",
        picked,
        "tenants",
        d=detail,
        tenant_id=tenant_id,
        cost_chart=charts.series_chart(got["cost"], "cost (USD)", money=True),
        requests_chart=charts.series_chart(got["requests"], "requests"),
        breakdowns=breakdowns,
        customers=customers,
        any_customer=any(r.key for r in customers.items),
        sla=got["sla"][0] if got["sla"] else None,
        users=got["users"],
        sessions=got["sessions"],
        alerts_firing=got["alerts"],
        anomalies=got["anomalies"],
        risers=got["risers"],
        limits=got["limits"][0],
        limit_approvals=got["limits"][1],
        limit_names=got["limits"][2],
        limit_raise=limit_views.raise_text,
        plan=got["plan"],
    )


@router.get("/traces")
def traces(
    request: Request,
    scope: ScopeDep,
    queries: QueriesDep,
    picked: PickedDep,
    tenant_id: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    customer_id: str | None = None,
    model: str | None = None,
    feature: str | None = None,
    status: str | None = None,
    cursor: str | None = None,
    form: FormQ = None,
    fmt: FormatQ = None,
) -> Response:
    if form is not None:
        return _canonical(request)
    filters = {
        "tenant_id": tenant_id,
        "user_id": user_id,
        "session_id": session_id,
        "customer_id": customer_id,
        "model": model,
        "feature": feature,
        "status": status,
    }
    applied = {k: v if k == "tenant_id" else v or None for k, v in filters.items()}
    if wants_csv(fmt):
        return downloads.traces(queries, scope, picked, **applied)
    page = queries.traces(scope, picked.rng, limit=PAGE_SIZE, cursor=cursor, **applied)
    return _page(
        request,
        "traces.html",
        picked,
        "traces",
        page=page,
        filters=filters,
        statuses=TRACE_STATUSES,
        cursor=cursor,
    )


@router.get("/traces/{trace_id}")
def trace(
    request: Request,
    scope: ScopeDep,
    queries: QueriesDep,
    trace_id: str,
    picked: PickedDep,
    tenant_id: str | None = None,  # the tenant selected: kept for the links onwards
) -> HTMLResponse:
    detail = queries.trace(scope, trace_id)
    return _page(request, "trace.html", picked, "traces", t=detail, rows=_waterfall(detail))


def _waterfall(t: TraceDetail) -> list[dict[str, Any]]:
    """The span tree flattened depth first, each with its bar's offset and width (%)."""
    total = max(t.duration_ms, 0.001)
    t0 = t.start_time or datetime.now(timezone.utc)
    out: list[dict[str, Any]] = []

    def walk(node: Any, depth: int) -> None:
        start = node.start_time or t0
        offset = max((start - t0).total_seconds() * 1000.0, 0.0)
        out.append(
            {
                "span": node,
                "depth": depth,
                "left": min(offset / total * 100.0, 100.0),
                "width": max(min(node.duration_ms / total * 100.0, 100.0), 0.3),
            }
        )
        for child in node.children:
            walk(child, depth + 1)

    for root in t.roots:
        walk(root, 0)
    return out


@router.get("/users")
def users(
    request: Request,
    scope: ScopeDep,
    queries: QueriesDep,
    picked: PickedDep,
    tenant_id: str | None = None,
    sort: str | None = None,
    cursor: str | None = None,
    form: FormQ = None,
    fmt: FormatQ = None,
) -> Response:
    if form is not None:
        return _canonical(request)
    sort = sort or "cost"
    if wants_csv(fmt):
        return downloads.actors("users", queries, scope, picked, tenant_id=tenant_id, sort=sort)
    page = queries.users(
        scope, picked.rng, tenant_id=tenant_id, sort=sort, limit=PAGE_SIZE, cursor=cursor
    )
    return _page(
        request,
        "actors.html",
        picked,
        "users",
        kind="users",
        page=page,
        tenant_id=tenant_id,
        sort=sort,
        cursor=cursor,
    )


@router.get("/sessions")
def sessions(
    request: Request,
    scope: ScopeDep,
    queries: QueriesDep,
    picked: PickedDep,
    tenant_id: str | None = None,
    user_id: str | None = None,
    sort: str | None = None,
    cursor: str | None = None,
    form: FormQ = None,
    fmt: FormatQ = None,
) -> Response:
    if form is not None:
        return _canonical(request)
    sort = sort or "last_seen"
    filters = {"tenant_id": tenant_id, "user_id": user_id or None, "sort": sort}
    if wants_csv(fmt):
        return downloads.actors("sessions", queries, scope, picked, **filters)
    page = queries.sessions(scope, picked.rng, limit=PAGE_SIZE, cursor=cursor, **filters)
    return _page(
        request,
        "actors.html",
        picked,
        "sessions",
        kind="sessions",
        page=page,
        tenant_id=tenant_id,
        user_id=user_id,
        sort=sort,
        cursor=cursor,
    )


@router.get("/sla")
def sla(
    request: Request,
    scope: ScopeDep,
    queries: QueriesDep,
    picked: PickedDep,
    tenant_id: str | None = None,
    fmt: FormatQ = None,
) -> Response:
    rows = queries.sla(scope, picked.rng, tenant_id=tenant_id)
    tiers: dict[str, list[SlaRow]] = {}
    for r in rows:
        if r.target_p95_ms is not None:
            tiers.setdefault(r.tier or "(no tier)", []).append(r)
    for members in tiers.values():
        members.sort(key=lambda r: (r.compliant is not False, -(r.p95_ms or 0)))
    if wants_csv(fmt):  # the rows the page shows, in its order
        return downloads.sla([r for _, members in sorted(tiers.items()) for r in members], picked)
    groups = []
    for name, members in sorted(tiers.items()):
        targets = {r.target_p95_ms for r in members}
        target = targets.pop() if len(targets) == 1 else None
        groups.append(
            {
                "tier": name,
                "rows": members,
                "target": target,
                "failing": sum(1 for r in members if r.compliant is False),
                "chart": charts.latency_chart(members, target),
            }
        )
    untargeted = sum(1 for r in rows if r.target_p95_ms is None)
    return _page(
        request,
        "sla.html",
        picked,
        "sla",
        groups=groups,
        untargeted=untargeted,
        budgets=_error_budgets(request, scope, tenant_id),
    )


def _error_budgets(
    request: Request, scope: Scope, tenant_id: str | None
) -> list[tuple[Slo, list[SloStatus]]]:
    """Each SLO with its covered tenants' error budget and burn rates now (the SLO's own
    period, not the page's range); a tenant session sees its own tenant's."""
    svc = services_of(request)
    now = datetime.now(timezone.utc)
    only = [tenant_id] if tenant_id is not None else None
    out = []
    for slo in svc.config.alerts.list_slos():
        found = slo_status(svc.queries, svc.config, slo, scope, now, only)
        if found:
            out.append((slo, found))
    return out


def override_coverage(
    overrides: Sequence[PriceOverride], models: Sequence[ModelRow]
) -> dict[int | None, list[str]]:
    """Which of the models seen each override prices (it also covers the dated names the
    catalog prices as its model), by override id."""
    return {
        o.id: [
            f"{m.provider}/{m.model}" if m.provider else m.model
            for m in models
            if override_covers(o, m.provider, m.model)
        ]
        for o in overrides
    }


@router.get("/prices")
def prices(
    request: Request,
    scope: ScopeDep,
    queries: QueriesDep,
    picked: PickedDep,
    tenant_id: str | None = None,
    fmt: FormatQ = None,
    table: Annotated[
        Literal["models", "overrides"] | None, Query(description="with format=csv")
    ] = None,
) -> Response:
    now = datetime.now(timezone.utc)
    models = queries.models(scope, picked.rng, tenant_id=tenant_id)
    seen = [{"m": m, "catalog": catalog_price(m.provider, m.model, now)} for m in models]
    overrides = queries.config.list_price_overrides()
    covers = override_coverage(overrides, models)
    if wants_csv(fmt, table):
        if table == "overrides":
            return downloads.overrides(overrides, covers, picked)
        return downloads.models(seen, picked)
    return _page(
        request,
        "prices.html",
        picked,
        "prices",
        seen=seen,
        overrides=overrides,
        covers=covers,
        catalog_version=catalog_version(),
        now=now,
    )
