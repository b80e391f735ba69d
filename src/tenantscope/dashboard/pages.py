"""The dashboard's pages. Each handler reads its filters from the URL, asks the query
layer (with the caller's Scope, exactly as the JSON API does) and renders a template."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tenantscope.dashboard import charts
from tenantscope.dashboard.ranges import PRESETS, PickedRange, pick
from tenantscope.dashboard.render import pages
from tenantscope.pricing.catalog import catalog_price, catalog_version
from tenantscope.query.models import SlaRow, TraceDetail
from tenantscope.query.queries import TRACE_STATUSES, Queries
from tenantscope.query.scope import Scope
from tenantscope.server.routes_api import get_queries, get_scope

router = APIRouter(include_in_schema=False)

ScopeDep = Annotated[Scope, Depends(get_scope)]
QueriesDep = Annotated[Queries, Depends(get_queries)]
RangeQ = Annotated[str | None, Query(alias="range")]
FromQ = Annotated[str | None, Query(alias="from")]
ToQ = Annotated[str | None, Query(alias="to")]
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


HtmlDep = Depends(_html)


def _picked(range_: RangeQ = None, start: FromQ = None, end: ToQ = None) -> PickedRange:
    """The page's time range from the URL: ``range=24h`` or ``from``/``to``."""
    return pick(range_, start, end)


PickedDep = Annotated[PickedRange, Depends(_picked)]


def _common(picked: PickedRange, **values: Any) -> dict[str, Any]:
    return {"picked": picked, "presets": list(PRESETS), **values}


@router.get("/", response_class=HTMLResponse, dependencies=[HtmlDep], response_model=None)
def overview(
    request: Request,
    scope: ScopeDep,
    queries: QueriesDep,
    picked: PickedDep,
) -> Response:
    principal = getattr(request.state, "principal", None)
    if principal is not None and principal.role == "tenant":
        # a tenant's overview is its own tenant page
        return RedirectResponse(
            "/tenant?" + urlencode({"id": principal.tenant_id, **picked.params()}),
            status_code=303,
        )
    if not queries.has_data(scope):
        return pages.render(request, "empty.html", **_common(picked, nav="overview"))
    rng = picked.rng
    got = _gather(
        totals=lambda: queries.totals(scope, rng, sessions=False),
        previous=lambda: queries.totals(scope, rng.previous(), sessions=False),
        cost=lambda: queries.timeseries(
            scope, rng, "cost", picked.interval, group_by="tenant", limit=6
        ),
        top=lambda: queries.tenants(scope, rng, sort="cost", limit=8),
        models=lambda: queries.breakdown(scope, rng, "model", limit=8),
        active=lambda: queries.active_tenants(scope, rng),
        active_before=lambda: queries.active_tenants(scope, rng.previous()),
    )
    return pages.render(
        request,
        "overview.html",
        **_common(
            picked,
            nav="overview",
            totals=got["totals"],
            previous=got["previous"],
            active=got["active"],
            active_before=got["active_before"],
            cost_chart=charts.series_chart(got["cost"], "cost (USD)", money=True),
            top=got["top"].items,
            models=got["models"],
        ),
    )


@router.get("/tenants", response_class=HTMLResponse, dependencies=[HtmlDep])
def tenants(
    request: Request,
    scope: ScopeDep,
    queries: QueriesDep,
    picked: PickedDep,
    q: str | None = None,
    sort: str | None = None,
    order: str | None = None,
    cursor: str | None = None,
) -> HTMLResponse:
    sort = sort or "cost"  # the query layer refuses an unknown one
    order = order or ("asc" if sort == "tenant" else "desc")
    page = queries.tenants(
        scope, picked.rng, q=q, sort=sort, order=order, limit=PAGE_SIZE, cursor=cursor
    )
    return pages.render(
        request,
        "tenants.html",
        **_common(
            picked,
            nav="tenants",
            page=page,
            q=q or "",
            sort=sort,
            order=order,
            cursor=cursor,
            columns=TENANT_COLUMNS,
        ),
    )


@router.get("/tenant", response_class=HTMLResponse, dependencies=[HtmlDep])
def tenant(
    request: Request,
    scope: ScopeDep,
    queries: QueriesDep,
    tenant_id: Annotated[str, Query(alias="id")],
    picked: PickedDep,
) -> HTMLResponse:
    rng = picked.rng
    detail = queries.tenant(scope, tenant_id, rng)  # NotFound for another tenant's id
    got = _gather(
        cost=lambda: queries.timeseries(scope, rng, "cost", picked.interval, tenant_id=tenant_id),
        requests=lambda: queries.timeseries(
            scope, rng, "requests", picked.interval, tenant_id=tenant_id
        ),
        breakdowns=lambda: queries.breakdowns(
            scope, rng, ("model", "feature", "user", "workspace"), tenant_id=tenant_id, limit=8
        ),
        sla=lambda: queries.sla(scope, rng, tenant_id=tenant_id),
        users=lambda: queries.users(scope, rng, tenant_id=tenant_id, sort="cost", limit=10),
        sessions=lambda: queries.sessions(scope, rng, tenant_id=tenant_id, limit=10),
    )
    return pages.render(
        request,
        "tenant.html",
        **_common(
            picked,
            nav="tenants",
            d=detail,
            tenant_id=tenant_id,
            cost_chart=charts.series_chart(got["cost"], "cost (USD)", money=True),
            requests_chart=charts.series_chart(got["requests"], "requests"),
            breakdowns=got["breakdowns"],
            sla=got["sla"][0] if got["sla"] else None,
            users=got["users"],
            sessions=got["sessions"],
        ),
    )


@router.get("/traces", response_class=HTMLResponse, dependencies=[HtmlDep])
def traces(
    request: Request,
    scope: ScopeDep,
    queries: QueriesDep,
    picked: PickedDep,
    tenant: str | None = None,
    user: str | None = None,
    session: str | None = None,
    model: str | None = None,
    feature: str | None = None,
    status: str | None = None,
    cursor: str | None = None,
) -> HTMLResponse:
    filters = {
        "tenant": tenant,
        "user": user,
        "session": session,
        "model": model,
        "feature": feature,
        "status": status,
    }
    page = queries.traces(
        scope,
        picked.rng,
        tenant_id=tenant,
        user_id=user or None,
        session_id=session or None,
        model=model or None,
        feature=feature or None,
        status=status or None,
        limit=PAGE_SIZE,
        cursor=cursor,
    )
    return pages.render(
        request,
        "traces.html",
        **_common(
            picked,
            nav="traces",
            page=page,
            filters=filters,
            statuses=TRACE_STATUSES,
            cursor=cursor,
        ),
    )


@router.get("/traces/{trace_id}", response_class=HTMLResponse, dependencies=[HtmlDep])
def trace(
    request: Request,
    scope: ScopeDep,
    queries: QueriesDep,
    trace_id: str,
    picked: PickedDep,
) -> HTMLResponse:
    detail = queries.trace(scope, trace_id)
    return pages.render(
        request,
        "trace.html",
        **_common(picked, nav="traces", t=detail, rows=_waterfall(detail)),
    )


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


@router.get("/users", response_class=HTMLResponse, dependencies=[HtmlDep])
def users(
    request: Request,
    scope: ScopeDep,
    queries: QueriesDep,
    picked: PickedDep,
    tenant: str | None = None,
    sort: str | None = None,
    cursor: str | None = None,
) -> HTMLResponse:
    page = queries.users(
        scope, picked.rng, tenant_id=tenant, sort=sort or "cost", limit=PAGE_SIZE, cursor=cursor
    )
    return pages.render(
        request,
        "actors.html",
        **_common(
            picked,
            nav="users",
            kind="users",
            page=page,
            tenant=tenant,
            sort=sort or "cost",
            cursor=cursor,
        ),
    )


@router.get("/sessions", response_class=HTMLResponse, dependencies=[HtmlDep])
def sessions(
    request: Request,
    scope: ScopeDep,
    queries: QueriesDep,
    picked: PickedDep,
    tenant: str | None = None,
    user: str | None = None,
    sort: str | None = None,
    cursor: str | None = None,
) -> HTMLResponse:
    page = queries.sessions(
        scope,
        picked.rng,
        tenant_id=tenant,
        user_id=user or None,
        sort=sort or "last_seen",
        limit=PAGE_SIZE,
        cursor=cursor,
    )
    return pages.render(
        request,
        "actors.html",
        **_common(
            picked,
            nav="sessions",
            kind="sessions",
            page=page,
            tenant=tenant,
            user=user,
            sort=sort or "last_seen",
            cursor=cursor,
        ),
    )


@router.get("/sla", response_class=HTMLResponse, dependencies=[HtmlDep])
def sla(
    request: Request,
    scope: ScopeDep,
    queries: QueriesDep,
    picked: PickedDep,
) -> HTMLResponse:
    rows = queries.sla(scope, picked.rng)
    tiers: dict[str, list[SlaRow]] = {}
    for r in rows:
        if r.target_p95_ms is not None:
            tiers.setdefault(r.tier or "(no tier)", []).append(r)
    groups = []
    for name, members in sorted(tiers.items()):
        members.sort(key=lambda r: (r.compliant is not False, -(r.p95_ms or 0)))
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
    return pages.render(
        request,
        "sla.html",
        **_common(picked, nav="sla", groups=groups, untargeted=untargeted),
    )


@router.get("/prices", response_class=HTMLResponse, dependencies=[HtmlDep])
def prices(
    request: Request,
    scope: ScopeDep,
    queries: QueriesDep,
    picked: PickedDep,
) -> HTMLResponse:
    now = datetime.now(timezone.utc)
    seen = []
    for m in queries.models(scope, picked.rng):
        seen.append({"m": m, "catalog": catalog_price(m.provider, m.model, now)})
    overrides = queries.config.list_price_overrides()
    return pages.render(
        request,
        "prices.html",
        **_common(
            picked,
            nav="prices",
            seen=seen,
            overrides=overrides,
            catalog_version=catalog_version(),
            now=now,
        ),
    )
