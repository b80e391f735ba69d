"""SLOs in the JSON API: admins create them (with their burn-rate alert rules) and remove
them; admins and readers list them with each tenant's error budget and burn rates; a
tenant key reads its own tenant's status only (``/api/slo-status``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from tenantscope.alerts import slo as slos
from tenantscope.alerts.evaluator import utcnow
from tenantscope.alerts.rules import rule_json
from tenantscope.errors import NotFound
from tenantscope.query.scope import Scope
from tenantscope.server.routes_alerts import read_json
from tenantscope.server.routes_keys import api_actor
from tenantscope.server.services import services_of
from tenantscope.server.strict_params import reject_unknown_params
from tenantscope.storage.alert_state import Slo

router = APIRouter(prefix="/api", tags=["slos"], dependencies=[Depends(reject_unknown_params)])
SloId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def slo_json(slo: Slo) -> dict[str, Any]:
    return {
        "id": slo.id,
        "name": slo.name,
        "indicator": slo.indicator,
        "objective": format(slo.objective, "f"),
        "target_ms": slo.target_ms,
        "period_days": slo.period_days,
        "tenant_ids": slo.tenant_ids,
        "tier": slo.tier,
    }


def status_json(s: slos.SloStatus) -> dict[str, Any]:
    def text(v: Any) -> str | None:
        return None if v is None else format(v, "f")

    return {
        "slo_id": s.slo_id,
        "tenant_id": s.tenant_id,
        "requests": s.requests,
        "good_pct": text(s.good_pct),
        "budget_remaining_pct": text(s.budget_remaining_pct),
        "burn_rates": {w: text(v) for w, v in s.burn_rates.items()},
    }


@router.get("/slos", summary="SLOs with each covered tenant's error budget and burn rates")
def list_slos(request: Request) -> list[dict[str, Any]]:
    svc = services_of(request)
    now = utcnow()
    return [
        {
            **slo_json(s),
            "tenants": [
                status_json(x) for x in slos.status(svc.queries, svc.config, s, Scope.all(), now)
            ],
        }
        for s in svc.config.alerts.list_slos()
    ]


@router.post(
    "/slos",
    summary="Create an SLO and its burn-rate alert rules (the SRE workbook's by default)",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "example": {
                        "name": "enterprise latency",
                        "indicator": "latency",
                        "objective": "99",
                        "target_ms": 2000,
                        "period_days": 30,
                        "tier": "enterprise",
                        "contact_ids": [1],
                    }
                }
            },
        },
        "responses": {422: {"description": "fields to fix, each named in error.details"}},
    },
)
async def create_slo(request: Request) -> dict[str, Any]:
    slo, burns, contacts = slos.check_slo(await read_json(request))
    store = services_of(request).config.alerts
    added, rules = await run_in_threadpool(
        store.add_slo, slo, slos.burn_rules(slo, burns, contacts), actor=api_actor(request)
    )
    return {**slo_json(added), "rules": [rule_json(r) for r in rules]}


@router.get("/slos/{slo_id}", summary="One SLO, its tenants' status and its alert rules")
def get_slo(slo_id: SloId, request: Request) -> dict[str, Any]:
    svc = services_of(request)
    slo = svc.config.alerts.get_slo(slo_id)
    if slo is None:
        raise NotFound(f"no SLO {slo_id}")
    rules = [r for r in svc.config.alerts.list_rules() if r.slo_id == slo_id]
    return {
        **slo_json(slo),
        "tenants": [
            status_json(x) for x in slos.status(svc.queries, svc.config, slo, Scope.all(), utcnow())
        ],
        "rules": [rule_json(r) for r in rules],
    }


@router.delete("/slos/{slo_id}", summary="Remove an SLO and its burn-rate rules", status_code=204)
def delete_slo(slo_id: SloId, request: Request) -> None:
    if not services_of(request).config.alerts.delete_slo(slo_id, actor=api_actor(request)):
        raise NotFound(f"no SLO {slo_id}")


@router.get(
    "/slo-status",
    summary="Error budget and burn rates per SLO and tenant (a tenant key: its own)",
)
def slo_status(
    request: Request,
    tenant_id: Annotated[str | None, Query(max_length=1024)] = None,
) -> list[dict[str, Any]]:
    svc = services_of(request)
    scope: Scope = request.state.scope
    if tenant_id is not None and not scope.allows(tenant_id):
        raise NotFound(f"tenant {tenant_id!r} not found")
    only = [tenant_id] if tenant_id is not None else None
    now = utcnow()
    out = []
    for slo in svc.config.alerts.list_slos():
        for s in slos.status(svc.queries, svc.config, slo, scope, now, only):
            # a tenant sees its own figures and the objective, not the SLO's other tenants
            out.append(
                {
                    **status_json(s),
                    "slo": {
                        k: v for k, v in slo_json(slo).items() if k not in ("tenant_ids", "tier")
                    },
                }
            )
    return out
