"""The dashboard's plan pages: every plan with its terms in words and who is on which
plan from when (``/plans``), and the admin forms that create, edit and remove plans and
assign a plan to a tenant from a moment (or remove an assignment).

As the limit pages (dashboard/limits.py): reading is for admin and reader sessions, the
forms for admins (server/access.py); each form carries the CSRF token, checked before
anything is read; a plan goes through ``check_plan`` and an assignment through
``check_assignment`` (the API's and CLI's own checks), and what they refuse comes back as
the form with every wrong field named, the values as typed, status 422 and nothing
stored. What is stored goes through ``config.plans`` (audited as this session's key) and
is answered with a redirect to a page that confirms it once. A plan some assignment names
is not removed: the page says so (409), naming the tenants.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from tenantscope.billing.plans import check_assignment, check_plan
from tenantscope.dashboard import plan_views as views
from tenantscope.dashboard.admin import INVALID, _actor, _redirect
from tenantscope.dashboard.alerts import OptionalId, _checked_form, _posted_id
from tenantscope.dashboard.pages import PickedDep, _html
from tenantscope.dashboard.ranges import PickedRange, pick
from tenantscope.dashboard.render import pages, tenant_label
from tenantscope.errors import Conflict, InvalidFields, NotFound
from tenantscope.server.services import services_of
from tenantscope.server.strict_params import reject_unknown_params
from tenantscope.storage.plan_state import Plan, PlanStore
from tenantscope.storage.validation import MAX_TENANT_ID

router = APIRouter(
    include_in_schema=False, dependencies=[Depends(_html), Depends(reject_unknown_params)]
)
TextQ = Annotated[str | None, Query(max_length=MAX_TENANT_ID)]


def _store(request: Request) -> PlanStore:
    return services_of(request).config.plans


def _plan_name(plan: Plan) -> str:
    return f"{plan.ref} “{plan.name}”"


def plans_url(tenant_id: str | None = None) -> str:
    return "/plans" + ("?" + urlencode({"tenant_id": tenant_id}) if tenant_id is not None else "")


# -- reading -------------------------------------------------------------------------------


def _render_plans(
    request: Request,
    picked: PickedRange,
    tenant_id: str | None,
    *,
    error: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    store = _store(request)
    defined = store.list_plans()
    found = store.list_assignments(tenant_id)
    return pages.render(
        request,
        "plans.html",
        status_code=status_code,
        picked=picked,
        nav="plans",
        no_range=True,  # plans have no time range: it only rides along in links
        plans=views.plan_rows(defined, store.list_assignments() if tenant_id else found),
        assignments=views.assignments(found, defined, datetime.now(timezone.utc)),
        tenant_id=tenant_id,
        error=error,
    )


@router.get("/plans")
def plans(request: Request, picked: PickedDep, tenant_id: TextQ = None) -> HTMLResponse:
    """Every plan in words, and the assignments (``tenant_id``'s only when given)."""
    return _render_plans(request, picked, tenant_id)


async def _refused(request: Request, message: str, status_code: int) -> HTMLResponse:
    picked = pick(None, None, None)  # a form posts no range: the page's default
    return await run_in_threadpool(
        lambda: _render_plans(request, picked, None, error=message, status_code=status_code)
    )


async def _missing(request: Request, what: str, given: str) -> HTMLResponse:
    return await _refused(request, f"There is no {what} {given[:20]!r}: nothing changed.", 404)


# -- plans ---------------------------------------------------------------------------------


def _render_plan_form(
    request: Request,
    *,
    plan_id: int | None,
    values: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
) -> HTMLResponse:
    return pages.render(
        request,
        "admin_plan.html",
        status_code=status_code,
        nav="plans",
        plan_id=plan_id,
        values=values,
        errors=errors,
        labels=views.PLAN_LABELS,
        overages=views.OVERAGE_OPTIONS,
    )


@router.get("/admin/plans/plan")
def plan_form(request: Request, picked: PickedDep, id: OptionalId = None) -> HTMLResponse:
    """An empty form for a new plan, or plan ``id``'s to edit."""
    plan = None
    if id is not None:
        plan = _store(request).get_plan(id)
        if plan is None:
            raise NotFound(f"no plan {id}")
    return _render_plan_form(request, plan_id=id, values=views.plan_values(plan), errors={})


@router.post("/admin/plans/plan")
async def plan_save(request: Request) -> Response:
    form = await _checked_form(request)
    store = _store(request)
    plan_id = _posted_id(form, "id")
    base = None
    if plan_id is not None:
        base = await run_in_threadpool(store.get_plan, plan_id)
        if base is None:
            raise NotFound(f"no plan {plan_id}: it was removed")
    values = views.plan_submission(form)
    actor = _actor(request)
    try:
        plan = check_plan(dict(values), base=base)
        if plan_id is None:
            saved: Plan | None = await run_in_threadpool(lambda: store.add_plan(plan, actor=actor))
        else:
            saved = await run_in_threadpool(lambda: store.replace_plan(plan_id, plan, actor=actor))
    except InvalidFields as exc:  # check_plan's, or a name another plan has
        problems = exc.problems
        return await run_in_threadpool(
            lambda: _render_plan_form(
                request, plan_id=plan_id, values=values, errors=problems, status_code=INVALID
            )
        )
    if saved is None:
        raise NotFound(f"no plan {plan_id}: it was removed")
    verb = "created" if plan_id is None else "saved"
    return _redirect("/plans", f"Plan {_plan_name(saved)} {verb}.")


@router.post("/admin/plans/plan/delete")
async def plan_delete(request: Request) -> Response:
    form = await _checked_form(request)
    store = _store(request)
    plan_id = _posted_id(form, "plan_id")
    plan = None if plan_id is None else await run_in_threadpool(store.get_plan, plan_id)
    if plan_id is None or plan is None:
        return await _missing(request, "plan", form.get("plan_id", [""])[0])
    actor = _actor(request)
    try:
        removed = await run_in_threadpool(lambda: store.delete_plan(plan_id, actor=actor))
    except Conflict as exc:  # assigned: the message names the tenants
        return await _refused(request, f"Not removed: {exc.message}.", exc.status)
    if not removed:
        return await _missing(request, "plan", str(plan_id))
    return _redirect("/plans", f"Plan {_plan_name(plan)} removed.")


# -- assignments ---------------------------------------------------------------------------


def _render_assign_form(
    request: Request,
    *,
    values: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
) -> HTMLResponse:
    defined = _store(request).list_plans()
    return pages.render(
        request,
        "admin_plan_assign.html",
        status_code=status_code,
        nav="plans",
        values=values,
        errors=errors,
        labels=views.ASSIGN_LABELS,
        choices=[(str(p.id), f"{p.ref} · {p.name}") for p in defined],
    )


@router.get("/admin/plans/assign")
def assign_form(
    request: Request, picked: PickedDep, tenant_id: TextQ = None, plan_id: TextQ = None
) -> HTMLResponse:
    """The form putting a tenant on a plan from a moment, filled in with the tenant and
    plan of the link that opened it."""
    values = {"tenant_id": tenant_id or "", "plan_id": plan_id or "", "effective_from": ""}
    return _render_assign_form(request, values=values, errors={})


@router.post("/admin/plans/assign")
async def assign_save(request: Request) -> Response:
    form = await _checked_form(request)
    store = _store(request)
    values = views.assign_submission(form)
    actor = _actor(request)
    try:
        defined = await run_in_threadpool(store.list_plans)
        assignment = check_assignment(dict(values), defined)
        added = await run_in_threadpool(lambda: store.assign(assignment, actor=actor))
    except InvalidFields as exc:  # check_assignment's, or the plan removed meanwhile
        problems = exc.problems
        return await run_in_threadpool(
            lambda: _render_assign_form(
                request, values=values, errors=problems, status_code=INVALID
            )
        )
    name = next((_plan_name(p) for p in defined if p.id == added.plan_id), f"P{added.plan_id}")
    return _redirect(
        plans_url(added.tenant_id),
        f"Tenant {tenant_label(added.tenant_id)} is on plan {name} from"
        f" {added.effective_from.isoformat()}.",
    )


@router.post("/admin/plans/unassign")
async def unassign(request: Request) -> Response:
    form = await _checked_form(request)
    store = _store(request)
    assignment_id = _posted_id(form, "assignment_id")
    given = form.get("assignment_id", [""])[0]
    if assignment_id is None:
        return await _missing(request, "assignment", given)
    actor = _actor(request)
    if not await run_in_threadpool(lambda: store.unassign(assignment_id, actor=actor)):
        return await _missing(request, "assignment", given)
    return _redirect("/plans", f"Assignment {assignment_id} removed.")
