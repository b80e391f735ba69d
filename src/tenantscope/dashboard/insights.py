"""The Insights page: each tenant's cost and usage anomalies of recent hours with what drove
them (``alerts/insights.py``), for every tenant an admin or reader may see, or a tenant
session's own."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse

from tenantscope.alerts import insights
from tenantscope.alerts.anomaly import DEFAULT as DETECTOR
from tenantscope.dashboard.pages import PickedDep, QueriesDep, ScopeDep, _html, _page
from tenantscope.errors import NotFound
from tenantscope.server.strict_params import reject_unknown_params

router = APIRouter(
    include_in_schema=False, dependencies=[Depends(_html), Depends(reject_unknown_params)]
)
HOURS = (6, 24, 72, 168)
METRIC_LABELS = {
    "cost": "cost per hour",
    "requests": "requests per hour",
    "tokens_per_request": "tokens per request",
    "error_rate": "error rate",
}


@router.get("/insights")
async def insights_page(
    request: Request,
    scope: ScopeDep,
    queries: QueriesDep,
    picked: PickedDep,
    tenant_id: Annotated[str | None, Query(max_length=1024)] = None,
    hours: Annotated[int, Query(ge=1, le=insights.MAX_HOURS)] = 24,
) -> HTMLResponse:
    if tenant_id is not None and not scope.allows(tenant_id):
        raise NotFound(f"tenant {tenant_id!r} not found")
    if not scope.is_all:
        tenant_id = scope.tenant_id
    now = datetime.now(timezone.utc)
    found = await run_in_threadpool(
        insights.anomalies, queries, scope, now, hours=hours, tenant_id=tenant_id
    )
    risers = (
        await run_in_threadpool(insights.risers, queries, scope, tenant_id, now)
        if tenant_id is not None
        else []
    )
    return _page(
        request,
        "insights.html",
        picked,
        "insights",
        findings=found,
        risers=risers,
        hours=hours,
        hour_choices=HOURS,
        tenant=tenant_id,
        labels=METRIC_LABELS,
        detector=DETECTOR,
    )
