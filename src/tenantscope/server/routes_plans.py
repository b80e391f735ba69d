"""Plans in the HTTP API: ``/api/plans`` (definitions) and ``/api/plans/assignments``
(which tenant is on which plan from when). Admin keys write, admin and reader keys read
(``access.CONFIG``); tenant keys get 403 — a tenant sees its plan in its own terms once
the customer-facing usage lands, never the operator's margins."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from tenantscope.billing.plans import (
    ASSIGNMENT_FIELDS,
    PLAN_FIELDS,
    assignment_rows,
    check_assignment,
    check_plan,
    plan_json,
)
from tenantscope.errors import NotFound
from tenantscope.server.routes_alerts import read_json
from tenantscope.server.routes_keys import api_actor
from tenantscope.server.routes_limits import _doc
from tenantscope.server.services import services_of
from tenantscope.server.strict_params import reject_unknown_params
from tenantscope.storage.validation import MAX_TENANT_ID

router = APIRouter(
    prefix="/api/plans", tags=["plans"], dependencies=[Depends(reject_unknown_params)]
)
PlanId = Annotated[int, Path(ge=1, le=2**31 - 1)]
AssignmentId = Annotated[int, Path(ge=1, le=2**31 - 1)]
_EXAMPLE = {
    "name": "professional",
    "base_fee_usd": "299",
    "included_units": 500,
    "included_action": "summary.generated",
    "overage": "per_unit",
    "unit_prices": {"action:summary.generated": "0.40", "feature:transcript_qa": "0.10"},
}


@router.get("", summary="Every plan")
def list_plans(request: Request) -> list[dict[str, Any]]:
    return [plan_json(p) for p in services_of(request).config.plans.list_plans()]


@router.post(
    "",
    summary="Create a plan",
    description=(
        "A base fee, an optional minimum, included usage per period (USD of provider cost,"
        " or units of one billable_action) and how usage beyond it is priced (provider cost"
        " + margin_pct, or unit_prices per action:/feature:). Money as decimal strings."
    ),
    status_code=201,
    openapi_extra=_doc(PLAN_FIELDS, _EXAMPLE, "name is required and unique"),
)
async def create_plan(request: Request) -> dict[str, Any]:
    plan = check_plan(await read_json(request))
    store = services_of(request).config.plans
    added = await run_in_threadpool(store.add_plan, plan, actor=api_actor(request))
    return plan_json(added)


@router.get(
    "/assignments",
    summary="Which tenant is on which plan from when (tenant_id=: one tenant's history)",
)
def list_assignments(
    request: Request,
    tenant_id: Annotated[str | None, Query(max_length=MAX_TENANT_ID)] = None,
) -> list[dict[str, Any]]:
    store = services_of(request).config.plans
    found = store.list_assignments(tenant_id)
    return assignment_rows(found, store.list_plans(), datetime.now(timezone.utc))


@router.post(
    "/assignments",
    summary="Put a tenant on a plan from a moment (the same moment again replaces it)",
    status_code=201,
    openapi_extra=_doc(
        ASSIGNMENT_FIELDS,
        # the example names no tenant: the API reference is public, and the isolation
        # matrix rightly flags any tenant id in a body a tenant key can read
        {"plan_id": 1, "effective_from": "2026-12-01T00:00:00Z"},
        "tenant_id (required: the tenant's id), plan_id and effective_from (RFC 3339; a"
        " date is midnight in the plan's time zone; past or future)",
    ),
)
async def assign(request: Request) -> dict[str, Any]:
    store = services_of(request).config.plans
    data = await read_json(request)
    plans = await run_in_threadpool(store.list_plans)
    added = await run_in_threadpool(
        store.assign, check_assignment(data, plans), actor=api_actor(request)
    )
    rows = assignment_rows(
        store.list_assignments(added.tenant_id), plans, datetime.now(timezone.utc)
    )
    return next(r for r in rows if r["id"] == added.id)


@router.delete("/assignments/{assignment_id}", summary="Remove an assignment", status_code=204)
def unassign(assignment_id: AssignmentId, request: Request) -> None:
    store = services_of(request).config.plans
    if not store.unassign(assignment_id, actor=api_actor(request)):
        raise NotFound(f"no assignment {assignment_id}")


@router.get("/{plan_id}", summary="One plan")
def get_plan(plan_id: PlanId, request: Request) -> dict[str, Any]:
    plan = services_of(request).config.plans.get_plan(plan_id)
    if plan is None:
        raise NotFound(f"no plan {plan_id}")
    return plan_json(plan)


@router.patch(
    "/{plan_id}",
    summary="Change a plan (fields left out keep their values)",
    openapi_extra=_doc(PLAN_FIELDS, {"base_fee_usd": "349"}, "any of the plan's fields"),
)
async def update_plan(plan_id: PlanId, request: Request) -> dict[str, Any]:
    store = services_of(request).config.plans
    current = await run_in_threadpool(store.get_plan, plan_id)
    if current is None:
        raise NotFound(f"no plan {plan_id}")
    plan = check_plan(await read_json(request), base=current)
    new = await run_in_threadpool(store.replace_plan, plan_id, plan, actor=api_actor(request))
    if new is None:
        raise NotFound(f"no plan {plan_id}")
    return plan_json(new)


@router.delete(
    "/{plan_id}",
    summary="Remove a plan (409 naming the tenants while any assignment names it)",
    status_code=204,
)
def delete_plan(plan_id: PlanId, request: Request) -> None:
    if not services_of(request).config.plans.delete_plan(plan_id, actor=api_actor(request)):
        raise NotFound(f"no plan {plan_id}")
