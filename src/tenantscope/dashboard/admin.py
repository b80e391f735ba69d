"""The dashboard's admin pages: forms for tenant configuration, price overrides and API
keys, and the audit log. Admin sessions only (server/access.py).

Every form carries the CSRF token and is checked before anything is read or written. Input
goes through the same checks the stores run (storage/validation.py), all fields at once,
so a bad submission comes back as the form with each wrong field named, the values as
typed, status 422 and nothing stored; a good one is stored by the same store call the CLI
and the API make (audited as this session's key) and answered with a redirect to a page
that confirms it (POST/redirect/GET).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tenantscope.dashboard.login import check_csrf, read_form, safe_next
from tenantscope.dashboard.pages import PickedDep, _html, _page, override_coverage
from tenantscope.dashboard.ranges import PickedRange, pick
from tenantscope.dashboard.render import pages, set_flash, tenant_label
from tenantscope.errors import Conflict
from tenantscope.pricing.catalog import catalog_model
from tenantscope.query.params import parse_time
from tenantscope.query.scope import Scope
from tenantscope.server.access import bearer
from tenantscope.server.keys import Principal, issue_key
from tenantscope.server.routes_audit import audit_page
from tenantscope.server.services import services_of
from tenantscope.server.strict_params import reject_unknown_params
from tenantscope.storage.audit import changed_fields
from tenantscope.storage.base import (
    AUDIT_ACTIONS,
    ROLES,
    TENANT_SETTABLE,
    Actor,
    PriceOverride,
    TenantConfig,
)
from tenantscope.storage.validation import (
    MAX_NOTE,
    PRICE_FIELDS,
    check_key_binding,
    check_label,
    check_model,
    check_money,
    check_some_price,
    check_tenant_fields,
    check_tenant_id,
    problems,
)

router = APIRouter(
    include_in_schema=False, dependencies=[Depends(_html), Depends(reject_unknown_params)]
)
INVALID = 422
# The most fields any admin form has, with room to spare (parse_qs refuses more).
MAX_FIELDS = 16
# Labels of the tenant form's fields, in TENANT_SETTABLE order.
TENANT_LABELS = {
    "display_name": "Name",
    "tier": "Tier",
    "sla_p95_ms": "SLA target, p95 (ms)",
    "rate_limit_rpm": "Rate limit (requests/min)",
    "monthly_budget_usd": "Monthly budget (USD)",
}
PRICE_LABELS = {
    "input_mtok": "Input",
    "output_mtok": "Output",
    "cache_read_mtok": "Cache read",
    "cache_write_mtok": "Cache write",
}
TenantQ = Annotated[str | None, Query()]


def _actor(request: Request) -> Actor:
    """The signed-in key as the audit log records it (``api`` if a key header was sent:
    it, not the cookie, is then the caller; server/access.py)."""
    principal: Principal = request.state.principal
    return principal.actor("api" if bearer(request.headers) else "session")


async def _checked_form(request: Request) -> dict[str, str]:
    form = await read_form(request, MAX_FIELDS)
    check_csrf(request, form)  # 403 before anything is looked at
    return form


def _redirect(to: str, message: str) -> RedirectResponse:
    response = RedirectResponse(to, status_code=303)
    set_flash(response, message)
    return response


def _tenant_url(tenant_id: str) -> str:
    return "/tenant?" + urlencode({"tenant_id": tenant_id})


# -- tenants -------------------------------------------------------------------------------


def _tenant_values(config: TenantConfig | None) -> dict[str, str]:
    if config is None:
        return dict.fromkeys(TENANT_SETTABLE, "")
    return {
        name: "" if getattr(config, name) is None else str(getattr(config, name))
        for name in TENANT_SETTABLE
    }


@router.get("/admin/tenants")
def tenants(request: Request, picked: PickedDep) -> HTMLResponse:
    listed = services_of(request).config.list_tenants()
    return pages.render(request, "admin_tenants.html", nav="admin", tab="tenants", tenants=listed)


@router.get("/admin/tenant")
def tenant_form(
    request: Request, picked: PickedDep, tenant_id: TenantQ = None, next: TenantQ = None
) -> HTMLResponse:
    """The form for one tenant: its configuration to edit, or an empty one to create (with
    the id filled in when given, e.g. from the page of a tenant without configuration)."""
    config = services_of(request).config.get_tenant(tenant_id) if tenant_id else None
    return _render_tenant_form(
        request,
        tenant_id=tenant_id or "",
        is_new=config is None,
        values=_tenant_values(config),
        errors={},
        next_url=safe_next(next) if next else "",
    )


def _render_tenant_form(
    request: Request,
    *,
    tenant_id: str,
    is_new: bool,
    values: dict[str, str],
    errors: dict[str, str],
    next_url: str,
    status_code: int = 200,
) -> HTMLResponse:
    return pages.render(
        request,
        "admin_tenant.html",
        status_code=status_code,
        nav="admin",
        tab="tenants",
        tenant_id=tenant_id,
        is_new=is_new,
        values=values,
        errors=errors,
        labels=TENANT_LABELS,
        next_url=next_url,
    )


@router.post("/admin/tenant")
async def tenant_save(request: Request) -> Response:
    form = await _checked_form(request)
    config = services_of(request).config
    tenant_id = form.get("tenant_id", "")
    is_new = form.get("is_new") == "1"
    values = {name: form.get(name, "") for name in TENANT_SETTABLE}
    # an empty box clears the value (None), as `tenants set --budget none` does
    fields: dict[str, Any] = {
        name: (value if name in ("display_name", "tier") else value.strip() or None)
        for name, value in values.items()
    }
    found = problems(
        ("tenant_id", lambda: check_tenant_id(tenant_id)),
        *((name, lambda n=name: check_tenant_fields({n: fields[n]})) for name in fields),
    )
    if is_new and "tenant_id" not in found:
        if await run_in_threadpool(config.get_tenant, tenant_id) is not None:
            found["tenant_id"] = "this tenant is configured already: edit it instead"
    next_url = safe_next(form["next"]) if form.get("next") else ""
    if found:
        return _render_tenant_form(
            request,
            tenant_id=tenant_id,
            is_new=is_new,
            values=values,
            errors=found,
            next_url=next_url,
            status_code=INVALID,
        )
    await run_in_threadpool(lambda: config.set_tenant(tenant_id, actor=_actor(request), **fields))
    verb = "created" if is_new else "saved"
    return _redirect(
        next_url or _tenant_url(tenant_id),
        f"Configuration of tenant {tenant_label(tenant_id)} {verb}.",
    )


# -- price overrides -----------------------------------------------------------------------

OVERRIDE_FIELDS = ("model", "provider", "effective_from", *PRICE_FIELDS, "note")


def _override_values(o: PriceOverride | None) -> dict[str, str]:
    if o is None:
        return dict.fromkeys(OVERRIDE_FIELDS, "")
    values = {
        name: "" if getattr(o, name) is None else str(getattr(o, name)) for name in PRICE_FIELDS
    }
    effective = o.effective_from.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return {
        **values,
        "model": o.model,
        "provider": o.provider,
        "note": o.note,
        "effective_from": effective,
    }


def _render_prices(
    request: Request,
    picked: PickedRange,
    *,
    values: dict[str, str],
    errors: dict[str, str],
    editing: int | None,
    status_code: int = 200,
    error: str = "",
) -> HTMLResponse:
    svc = services_of(request)
    overrides = svc.config.list_price_overrides()
    models = svc.queries.models(Scope.all(), picked.rng)
    families: dict[int | None, str] = {}
    for o in overrides:
        family = catalog_model(o.provider or None, o.model)
        families[o.id] = f"{family[0]}/{family[1]}" if family is not None else ""
    return _page(
        request,
        "admin_prices.html",
        picked,
        "admin",
        status_code=status_code,
        tab="prices",
        overrides=overrides,
        covers=override_coverage(overrides, models),
        families=families,
        values=values,
        errors=errors,
        labels=PRICE_LABELS,
        editing=editing,
        error=error,
    )


@router.get("/admin/prices")
def prices(
    request: Request, picked: PickedDep, override_id: Annotated[int | None, Query()] = None
) -> HTMLResponse:
    """Overrides with the models they cover, and the form: empty to add one, or filled
    with override ``override_id`` to replace it."""
    editing = None
    if override_id is not None:
        editing = next(
            (o for o in services_of(request).config.list_price_overrides() if o.id == override_id),
            None,
        )
    return _render_prices(
        request,
        picked,
        values=_override_values(editing),
        errors={},
        editing=editing.id if editing else None,
        status_code=200 if editing or override_id is None else 404,
        error="" if editing or override_id is None else f"There is no override {override_id}.",
    )


def _override_from(form: dict[str, str]) -> tuple[PriceOverride | None, dict[str, str]]:
    """The override a form describes, or the problems of each wrong field."""
    prices = {name: form.get(name, "").strip() or None for name in PRICE_FIELDS}
    effective = form.get("effective_from", "").strip()
    found = problems(
        ("model", lambda: check_model(form.get("model", ""))),
        ("provider", lambda: check_label("provider", form.get("provider", ""))),
        ("note", lambda: check_label("note", form.get("note", ""), MAX_NOTE)),
        ("effective_from", lambda: parse_time(effective, "effective_from")),
        *((name, lambda n=name: check_money(n, prices[n])) for name in PRICE_FIELDS),
        ("input_mtok", lambda: check_some_price(prices)),
    )
    if found:
        return None, found
    money = {n: check_money(n, v) for n, v in prices.items()}
    override = PriceOverride(
        model=form.get("model", ""),
        provider=form.get("provider", ""),
        effective_from=parse_time(effective, "effective_from") or datetime.now(timezone.utc),
        note=form.get("note", ""),
        input_mtok=money["input_mtok"],
        output_mtok=money["output_mtok"],
        cache_read_mtok=money["cache_read_mtok"],
        cache_write_mtok=money["cache_write_mtok"],
    )
    return override, {}


@router.post("/admin/prices")
async def price_save(request: Request) -> Response:
    form = await _checked_form(request)
    config = services_of(request).config
    raw_id = form.get("override_id", "")
    editing = int(raw_id) if raw_id.isdigit() and len(raw_id) < 12 else None
    override, found = _override_from(form)
    if override is None:
        values = {name: form.get(name, "") for name in OVERRIDE_FIELDS}
        picked = pick(None, None, None)  # the form posts no range: the page's default
        return await run_in_threadpool(
            lambda: _render_prices(
                request, picked, values=values, errors=found, editing=editing,
                status_code=INVALID,
            )
        )  # fmt: skip
    actor = _actor(request)
    if editing is not None:
        saved = await run_in_threadpool(
            lambda: config.replace_price_override(editing, override, actor=actor)
        )
        if saved is None:
            return _redirect("/admin/prices", f"There is no override {editing} any more.")
        message = f"Override {editing} for {override.model} replaced."
    else:
        added = await run_in_threadpool(lambda: config.add_price_override(override, actor=actor))
        message = f"Override {added.id} for {override.model} added."
    return _redirect(
        "/admin/prices",
        message + " New calls use it within seconds; re-price stored calls with"
        " `tenantscope reprice`.",
    )


@router.post("/admin/prices/delete")
async def price_delete(request: Request) -> Response:
    form = await _checked_form(request)
    raw_id = form.get("override_id", "")
    config = services_of(request).config
    actor = _actor(request)
    if raw_id.isdigit() and len(raw_id) < 12:
        gone = await run_in_threadpool(
            lambda: config.delete_price_override(int(raw_id), actor=actor)
        )
        if gone:
            return _redirect("/admin/prices", f"Override {raw_id} removed.")
    return _redirect("/admin/prices", f"There is no override {raw_id[:20]!r}: nothing removed.")


# -- API keys ------------------------------------------------------------------------------


def _render_keys(
    request: Request,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    error: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    keys = services_of(request).config.list_api_keys()
    principal: Principal = request.state.principal
    return pages.render(
        request,
        "admin_keys.html",
        status_code=status_code,
        nav="admin",
        tab="keys",
        keys=keys,
        roles=ROLES,
        values=values or {"role": "reader", "tenant_id": "", "name": ""},
        errors=errors or {},
        error=error,
        own_key=principal.key_id,
    )


@router.get("/admin/keys")
def keys(request: Request, picked: PickedDep) -> HTMLResponse:
    return _render_keys(request)


@router.post("/admin/keys")
async def key_create(request: Request) -> Response:
    form = await _checked_form(request)
    values = {name: form.get(name, "") for name in ("role", "tenant_id", "name")}
    role, tenant_id, name = values["role"], values["tenant_id"] or None, values["name"]
    found = problems(
        ("role", lambda: check_key_binding(role, tenant_id, name)),
        ("name", lambda: check_label("name", name)),
    )
    if found:
        return await run_in_threadpool(
            lambda: _render_keys(request, values=values, errors=found, status_code=INVALID)
        )
    config = services_of(request).config
    actor = _actor(request)
    key, token = await run_in_threadpool(
        lambda: issue_key(config, role, name, tenant_id, actor=actor)
    )
    # the token is in this answer only (no-store): it is not kept anywhere to show again
    return pages.render(
        request, "admin_key_created.html", nav="admin", tab="keys", key=key, token=token
    )


@router.post("/admin/keys/revoke")
async def key_revoke(request: Request) -> Response:
    form = await _checked_form(request)
    key_id = form.get("key_id", "")[:64]
    svc = services_of(request)
    actor = _actor(request)
    try:
        revoked = await run_in_threadpool(lambda: svc.config.revoke_api_key(key_id, actor=actor))
    except Conflict as exc:  # the last active admin key stays; the form says why
        message, status = exc.message, exc.status
        return await run_in_threadpool(
            lambda: _render_keys(request, error=message, status_code=status)
        )
    if not revoked:
        return await run_in_threadpool(
            lambda: _render_keys(
                request, error=f"There is no active key {key_id!r}.", status_code=404
            )
        )
    svc.keys.forget(key_id)
    return _redirect("/admin/keys", f"Key {key_id} revoked: it no longer works.")


# -- the audit log -------------------------------------------------------------------------


@router.get("/audit")
def audit(
    request: Request,
    picked: PickedDep,
    action: TenantQ = None,
    target: TenantQ = None,
    since: TenantQ = None,
    cursor: TenantQ = None,
) -> HTMLResponse:
    entries, next_cursor = audit_page(
        services_of(request).config,
        action=action or None,
        target=target or None,
        since=since or None,
        cursor=cursor or None,
    )
    rows = [{"e": e, "changes": changed_fields(e)} for e in entries]
    return pages.render(
        request,
        "admin_audit.html",
        nav="audit",
        rows=rows,
        actions=AUDIT_ACTIONS,
        filters={"action": action or "", "target": target or "", "since": since or ""},
        next_cursor=next_cursor,
    )
