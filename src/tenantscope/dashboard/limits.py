"""The dashboard's limit pages: every tenant's limits as they stand, the approvals in
force and the definitions (``/limits``), and the admin forms that create, edit and remove
limits and grant and revoke approvals (temporary raises).

Reading is for admin and reader sessions; the forms are for admins (server/access.py). The
figures are the JSON API's own (``routes_limits.status_of``: the limiter's figures and the
blocked calls of the query layer), so the page, the API and the CLI never disagree. As on
the other admin pages, each form carries the CSRF token, checked before anything is read;
a limit goes through ``check_limit`` and an approval through ``check_approval`` (the API's
and CLI's own checks), and what they refuse comes back as the form with every wrong field
named, the values as typed, status 422 and nothing stored. What is stored goes through the
LimitStore (audited as this session's key) and is answered with a redirect to a page that
confirms it once. The server's limiter picks changes up within seconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from tenantscope.dashboard import limit_views as views
from tenantscope.dashboard.admin import INVALID, _actor, _redirect
from tenantscope.dashboard.alerts import OptionalId, _checked_form, _posted_id
from tenantscope.dashboard.pages import PickedDep, _html
from tenantscope.dashboard.ranges import PickedRange, pick
from tenantscope.dashboard.render import pages, tenant_label
from tenantscope.errors import InvalidFields, NotFound
from tenantscope.limits.definitions import (
    TENANT_BUDGET,
    TENANT_RATE,
    check_approval,
    check_limit,
)
from tenantscope.server.keys import Principal
from tenantscope.server.routes_limits import status_of
from tenantscope.server.services import services_of
from tenantscope.server.strict_params import reject_unknown_params
from tenantscope.storage.limit_state import LimitDef, LimitStore
from tenantscope.storage.validation import MAX_TENANT_ID

router = APIRouter(
    include_in_schema=False, dependencies=[Depends(_html), Depends(reject_unknown_params)]
)
TextQ = Annotated[str | None, Query(max_length=MAX_TENANT_ID)]


def _store(request: Request) -> LimitStore:
    return services_of(request).config.limits


def _now(request: Request) -> datetime:
    """The limiter's clock: the periods and approvals it judges by."""
    return services_of(request).limiter.clock()


def granted_by(request: Request) -> str:
    """Who granted an approval, as the JSON API names it (the key's label, else its id)."""
    principal: Principal = request.state.principal
    return principal.name or principal.key_id or principal.role


def _limit_name(limit: LimitDef) -> str:
    return f"{limit.ref} “{limit.name}”"


def limits_url(tenant_id: str | None = None) -> str:
    return "/limits" + ("?" + urlencode({"tenant_id": tenant_id}) if tenant_id is not None else "")


# -- reading -------------------------------------------------------------------------------


def _order(t: views.TenantLimits) -> tuple[float, str]:
    """What needs attention first: the tenant nearest to (or furthest past) a limit."""
    shares = [max(f.used_pct, f.projected_pct or 0.0) for g in t.groups for f in g.figures]
    return (-max(shares, default=-1.0), t.tenant_id)


def _render_limits(
    request: Request,
    picked: PickedRange,
    tenant_id: str | None,
    *,
    error: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    svc = services_of(request)
    store = svc.config.limits
    now = _now(request)
    tenants = sorted(views.tenant_limits(status_of(request, tenant_id), now), key=_order)
    listed = [t for t in tenants if t.groups]
    defined = store.list_limits()
    approvals = [
        a
        for a in store.list_approvals(active_at=now)
        if tenant_id is None or a.tenant_id == tenant_id
    ]
    return pages.render(
        request,
        "limits.html",
        status_code=status_code,
        picked=picked,
        nav="limits",
        no_range=True,  # month-to-date figures: the range only rides along in links
        tenants=listed,
        unlimited=len(tenants) - len(listed),
        chart=views.budget_chart(listed),
        approvals=approvals,
        names=views.limit_names(defined),
        definitions=views.definition_rows(defined, svc.config.list_tenants(), tenant_id),
        tenant_id=tenant_id,
        now=now,
        error=error,
        v=views,
    )


@router.get("/limits")
def limits(request: Request, picked: PickedDep, tenant_id: TextQ = None) -> HTMLResponse:
    """Every tenant's limits now (or ``tenant_id``'s), approvals in force, definitions.
    ``picked``: the range navigation links carry (the figures are the periods' own)."""
    return _render_limits(request, picked, tenant_id)


async def _missing(request: Request, what: str, given: str) -> HTMLResponse:
    message = f"There is no {what} {given[:20]!r}: nothing changed."
    picked = pick(None, None, None)  # a form posts no range: the page's default
    return await run_in_threadpool(
        lambda: _render_limits(request, picked, None, error=message, status_code=404)
    )


# -- limits --------------------------------------------------------------------------------


def _render_limit_form(
    request: Request,
    *,
    limit_id: int | None,
    values: dict[str, Any],
    errors: dict[str, str],
    status_code: int = 200,
) -> HTMLResponse:
    return pages.render(
        request,
        "admin_limit.html",
        status_code=status_code,
        nav="limits",
        limit_id=limit_id,
        values=values,
        errors=errors,
        labels=views.LIMIT_LABELS,
        options=views.LIMIT_OPTIONS,
        contacts=services_of(request).config.alerts.list_contacts(),
    )


@router.get("/admin/limits/limit")
def limit_form(
    request: Request,
    picked: PickedDep,
    id: OptionalId = None,
    tenant_id: TextQ = None,
    tier: TextQ = None,
) -> HTMLResponse:
    """An empty form for a new limit (for ``tenant_id`` or ``tier`` when given), or limit
    ``id``'s to edit."""
    limit = None
    if id is not None:
        limit = _store(request).get_limit(id)
        if limit is None:
            raise NotFound(f"no limit {id}")
    values = views.limit_values(limit, tenant_id=tenant_id or "", tier=tier or "")
    return _render_limit_form(request, limit_id=id, values=values, errors={})


@router.post("/admin/limits/limit")
async def limit_save(request: Request) -> Response:
    form = await _checked_form(request)
    store = _store(request)
    limit_id = _posted_id(form, "id")
    base = None
    if limit_id is not None:
        base = await run_in_threadpool(store.get_limit, limit_id)
        if base is None:
            raise NotFound(f"no limit {limit_id}: it was removed")
    data, values = views.limit_submission(form)
    actor = _actor(request)
    try:
        limit = check_limit(data, base=base)
        if limit_id is None:
            saved: LimitDef | None = await run_in_threadpool(
                lambda: store.add_limit(limit, actor=actor)
            )
        else:
            saved = await run_in_threadpool(
                lambda: store.replace_limit(limit_id, limit, actor=actor)
            )
    except InvalidFields as exc:  # check_limit's, or a contact point removed meanwhile
        problems = exc.problems
        return await run_in_threadpool(
            lambda: _render_limit_form(
                request, limit_id=limit_id, values=values, errors=problems, status_code=INVALID
            )
        )
    if saved is None:
        raise NotFound(f"no limit {limit_id}: it was removed")
    verb = "created" if limit_id is None else "saved"
    return _redirect(
        limits_url(saved.tenant_id or None),
        f"Limit {_limit_name(saved)} {verb}. The server applies it within seconds.",
    )


@router.post("/admin/limits/limit/delete")
async def limit_delete(request: Request) -> Response:
    form = await _checked_form(request)
    store = _store(request)
    limit_id = _posted_id(form, "limit_id")
    limit = None if limit_id is None else await run_in_threadpool(store.get_limit, limit_id)
    if limit_id is None or limit is None:
        return await _missing(request, "limit", form.get("limit_id", [""])[0])
    actor = _actor(request)
    if not await run_in_threadpool(lambda: store.delete_limit(limit_id, actor=actor)):
        return await _missing(request, "limit", str(limit_id))
    return _redirect("/limits", f"Limit {_limit_name(limit)} removed; its approvals ended.")


# -- approvals -----------------------------------------------------------------------------


def _render_approval_form(
    request: Request,
    *,
    values: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
) -> HTMLResponse:
    defined = _store(request).list_limits()
    choices = [(x.ref, f"{x.ref} · {x.name} ({x.kind})") for x in defined]
    choices += [
        (TENANT_RATE, f"{TENANT_RATE} · the tenant's configured rate limit"),
        (TENANT_BUDGET, f"{TENANT_BUDGET} · the tenant's configured monthly budget"),
    ]
    return pages.render(
        request,
        "admin_approval.html",
        status_code=status_code,
        nav="limits",
        values=values,
        errors=errors,
        labels=views.APPROVAL_LABELS,
        choices=choices,
    )


@router.get("/admin/limits/approval")
def approval_form(
    request: Request,
    picked: PickedDep,
    limit: TextQ = None,
    tenant_id: TextQ = None,
    subject: TextQ = None,
) -> HTMLResponse:
    """The form granting a temporary raise, filled in with the limit, tenant and subject
    of the link that opened it (a row of /limits)."""
    values = views.approval_values(
        _now(request), limit=limit or "", tenant_id=tenant_id or "", subject=subject or ""
    )
    return _render_approval_form(request, values=values, errors={})


@router.post("/admin/limits/approval")
async def approval_save(request: Request) -> Response:
    form = await _checked_form(request)
    store = _store(request)
    values = views.approval_submission(form)
    actor = _actor(request)
    try:
        defined = await run_in_threadpool(store.list_limits)
        approval = check_approval(
            values, defined, now=_now(request), granted_by=granted_by(request)
        )
    except InvalidFields as exc:
        problems = exc.problems
        return await run_in_threadpool(
            lambda: _render_approval_form(
                request, values=values, errors=problems, status_code=INVALID
            )
        )
    added = await run_in_threadpool(lambda: store.add_approval(approval, actor=actor))
    return _redirect(
        limits_url(added.tenant_id),
        f"Approval {added.id} granted: {views.raise_text(added)} on {added.limit_ref} for"
        f" tenant {tenant_label(added.tenant_id)} until {views.iso_text(added.expires_at)}.",
    )


@router.post("/admin/limits/approval/revoke")
async def approval_revoke(request: Request) -> Response:
    form = await _checked_form(request)
    store = _store(request)
    approval_id = _posted_id(form, "approval_id")
    given = form.get("approval_id", [""])[0]
    if approval_id is None:
        return await _missing(request, "approval", given)
    actor, now = _actor(request), _now(request)
    if not await run_in_threadpool(lambda: store.revoke_approval(approval_id, now, actor=actor)):
        return await _missing(request, "approval", given)
    return _redirect("/limits", f"Approval {approval_id} revoked: the limit is back to its own.")
