"""Insights in the JSON API: each tenant's cost and usage anomalies of recent hours with
what drove them, and one tenant's biggest risers. A tenant key sees its own tenant's."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from tenantscope.alerts import insights
from tenantscope.alerts.evaluator import utcnow
from tenantscope.errors import NotFound
from tenantscope.query.models import rfc3339
from tenantscope.query.scope import Scope
from tenantscope.server.services import services_of
from tenantscope.server.strict_params import reject_unknown_params

router = APIRouter(prefix="/api", tags=["insights"], dependencies=[Depends(reject_unknown_params)])


def finding_json(f: insights.Finding) -> dict[str, Any]:
    a, d = f.anomaly, f.driver
    return {
        "tenant_id": f.tenant_id,
        "hour": rfc3339(a.hour),
        "metric": a.metric,
        "actual": round(a.actual, 6),
        "expected": round(a.expected, 6),
        "ratio": None if a.ratio is None else round(a.ratio, 3),
        "score": round(a.score, 2),
        "direction": a.direction,
        "driver": None
        if d is None
        else {
            "dimension": d.dimension,
            "key": d.key,
            "share_before": round(d.share_before, 4),
            "share_now": round(d.share_now, 4),
        },
    }


def riser_json(r: insights.Riser) -> dict[str, Any]:
    return {
        "dimension": r.dimension,
        "key": r.key,
        "cost_usd_last_day": format(r.cost_now, "f"),
        "cost_usd_average_day_before": format(r.cost_before, "f"),
        "change_usd": format(r.change, "f"),
    }


@router.get(
    "/insights",
    summary="Cost and usage anomalies per tenant (and one tenant's biggest risers)",
    description="Each of the last `hours` whole hours of each tenant is judged against its"
    " hour-of-week baseline (README: Alerts, SLOs and anomalies); with `tenant_id`, also"
    " the models, features, users and workspaces whose cost rose most over the last day.",
)
def get_insights(
    request: Request,
    tenant_id: Annotated[str | None, Query(max_length=1024)] = None,
    hours: Annotated[int, Query(ge=1, le=insights.MAX_HOURS)] = 24,
) -> dict[str, Any]:
    svc = services_of(request)
    scope: Scope = request.state.scope
    if tenant_id is not None and not scope.allows(tenant_id):
        raise NotFound(f"tenant {tenant_id!r} not found")
    now = utcnow()
    found = insights.anomalies(svc.queries, scope, now, hours=hours, tenant_id=tenant_id)
    out: dict[str, Any] = {"anomalies": [finding_json(f) for f in found]}
    if tenant_id is not None:
        out["risers"] = [riser_json(r) for r in insights.risers(svc.queries, scope, tenant_id, now)]
    return out
