"""The dashboard's alert pages: every rule with its states, what fires now, the contact
points and the recent state changes (``/alerts``), one rule (``/alerts/rule?id=``), and
the admin forms that create, edit, remove and silence rules and contact points.

Reading is for admin and reader sessions; the forms are for admins (server/access.py). As
on the other admin pages (dashboard/admin.py), each form carries the CSRF token, checked
before anything is read; a rule goes through ``check_rule`` and a contact point through
``check_contact`` (the API's and CLI's own checks, nothing else), and what they refuse
comes back as the form with every wrong field named, the values as typed, status 422 and
nothing stored; what is stored goes through the AlertStore (audited as this session's key)
and is answered with a redirect to a page that confirms it once.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from tenantscope.alerts.contacts import (
    CONTACT_KINDS,
    FIELDS,
    SECRET_FIELDS,
    SMTP_SECURITY,
    ContactPoint,
    check_contact,
)
from tenantscope.alerts.rules import (
    COMPARATORS,
    FILTERS,
    METRICS,
    SCOPES,
    SEVERITIES,
    check_rule,
    format_duration,
)
from tenantscope.dashboard import alert_views as views
from tenantscope.dashboard.admin import INVALID, _actor, _redirect
from tenantscope.dashboard.login import check_csrf
from tenantscope.dashboard.pages import PickedDep, _html
from tenantscope.dashboard.render import pages, tenant_label
from tenantscope.errors import BadRequest, Conflict, InvalidFields, NotFound
from tenantscope.server.body import read_body
from tenantscope.server.routes_alerts import send_test
from tenantscope.server.services import services_of
from tenantscope.server.strict_params import reject_unknown_params
from tenantscope.storage.alert_state import AlertRule, AlertStore

router = APIRouter(
    include_in_schema=False, dependencies=[Depends(_html), Depends(reject_unknown_params)]
)
# A rule form holds up to 1,000 tenant ids and 20 contact point boxes: more room than
# the other forms (login.MAX_FORM_BYTES), as much as the JSON API takes for a rule.
MAX_FORM_BYTES = 64 * 1024
MAX_FIELDS = 100
HISTORY_SHOWN = 50
Id = Annotated[int, Query(ge=1, le=2**31 - 1)]
OptionalId = Annotated[int | None, Query(ge=1, le=2**31 - 1)]


def _store(request: Request) -> AlertStore:
    return services_of(request).config.alerts


async def _checked_form(request: Request) -> views.Form:
    """The posted form, every value of each field (checkbox groups send several), after
    the CSRF check (403 before anything is looked at)."""
    body = await read_body(request, MAX_FORM_BYTES)
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the form could not be read") from None
    check_csrf(request, {"csrf": form.get("csrf", [""])[0]})
    return form


def _posted_id(form: views.Form, name: str) -> int | None:
    raw = form.get(name, [""])[0].strip()
    return int(raw) if raw.isdigit() and len(raw) < 11 else None


def _rule_url(rule_id: int | None) -> str:
    return "/alerts/rule?" + urlencode({"id": rule_id})


def _rule_name(rule: AlertRule) -> str:
    return f"“{rule.name}”"


# -- reading -------------------------------------------------------------------------------


def _render_alerts(request: Request, *, error: str = "", status_code: int = 200) -> HTMLResponse:
    store = _store(request)
    now = views.now_utc()
    rules = store.list_rules()
    instances = store.instances()
    by_id = {r.id: r for r in rules if r.id is not None}
    return pages.render(
        request,
        "alerts.html",
        status_code=status_code,
        nav="alerts",
        no_charts=True,
        rules=rules,
        counts=views.state_counts(instances),
        firing=views.firing(rules, instances, now),
        contacts=views.contact_rows(store.list_contacts(), rules),
        history=views.history_rows(store.history(limit=HISTORY_SHOWN), by_id),
        now=now,
        error=error,
        v=views,
    )


@router.get("/alerts")
def alerts(request: Request, picked: PickedDep) -> HTMLResponse:
    """Every rule, the firing instances across them, the contact points and the recent
    state changes. ``picked``: the range that navigation links carry (not used here)."""
    return _render_alerts(request)


def _render_rule(
    request: Request, rule: AlertRule, *, error: str = "", status_code: int = 200
) -> HTMLResponse:
    store = _store(request)
    assert rule.id is not None
    now = views.now_utc()
    contacts = {c.id: c for c in store.list_contacts()}
    return pages.render(
        request,
        "alert_rule.html",
        status_code=status_code,
        nav="alerts",
        rule=rule,
        instances=views.instance_rows(rule, store.instances(rule.id), now),
        history=views.history_rows(
            store.history(rule_id=rule.id, limit=HISTORY_SHOWN), {rule.id: rule}
        ),
        contacts=[contacts.get(c) for c in rule.contact_ids],
        contact_ids=rule.contact_ids,
        filters=FILTERS,
        silence_choices=views.SILENCE_CHOICES,
        metric=METRICS.get(rule.metric),
        now=now,
        error=error,
        v=views,
        format_duration=format_duration,
    )


@router.get("/alerts/rule")
def alert_rule(request: Request, id: Id, picked: PickedDep) -> HTMLResponse:
    """One rule: its definition, each instance's state and its history."""
    rule = _store(request).get_rule(id)
    if rule is None:
        raise NotFound(f"no alert rule {id}")
    return _render_rule(request, rule)


# -- rules ---------------------------------------------------------------------------------


def _render_rule_form(
    request: Request,
    *,
    rule_id: int | None,
    values: dict[str, Any],
    errors: dict[str, str],
    status_code: int = 200,
) -> HTMLResponse:
    contacts = _store(request).list_contacts()
    return pages.render(
        request,
        "admin_alert_rule.html",
        status_code=status_code,
        nav="alerts",
        rule_id=rule_id,
        values=values,
        errors=errors,
        labels=views.RULE_LABELS,
        metrics=METRICS,
        scope_options=[(s, views.SCOPE_CHOICES.get(s, s)) for s in SCOPES],
        comparators=COMPARATORS,
        severities=SEVERITIES,
        filters=FILTERS,
        contacts=contacts,
    )


@router.get("/admin/alerts/rule")
def rule_form(request: Request, picked: PickedDep, id: OptionalId = None) -> HTMLResponse:
    """An empty form for a new rule, or rule ``id``'s to edit."""
    rule = None
    if id is not None:
        rule = _store(request).get_rule(id)
        if rule is None:
            raise NotFound(f"no alert rule {id}")
    return _render_rule_form(request, rule_id=id, values=views.rule_values(rule), errors={})


@router.post("/admin/alerts/rule")
async def rule_save(request: Request) -> Response:
    form = await _checked_form(request)
    store = _store(request)
    rule_id = _posted_id(form, "id")
    base = None
    if rule_id is not None:
        base = await run_in_threadpool(store.get_rule, rule_id)
        if base is None:
            raise NotFound(f"no alert rule {rule_id}: it was removed")
    data, values = views.rule_submission(form)
    actor = _actor(request)
    try:
        rule = check_rule(data, base=base)
        if rule_id is None:
            saved: AlertRule | None = await run_in_threadpool(
                lambda: store.add_rule(rule, actor=actor)
            )
        else:
            saved = await run_in_threadpool(lambda: store.replace_rule(rule_id, rule, actor=actor))
    except InvalidFields as exc:  # check_rule's, or a contact point removed meanwhile
        problems = exc.problems
        return await run_in_threadpool(
            lambda: _render_rule_form(
                request, rule_id=rule_id, values=values, errors=problems, status_code=INVALID
            )
        )
    if saved is None or saved.id is None:
        raise NotFound(f"no alert rule {rule_id}: it was removed")
    verb = "created" if rule_id is None else "saved"
    return _redirect(_rule_url(saved.id), f"Alert rule {_rule_name(saved)} {verb}.")


@router.post("/admin/alerts/rule/delete")
async def rule_delete(request: Request) -> Response:
    form = await _checked_form(request)
    store = _store(request)
    rule_id = _posted_id(form, "rule_id")
    actor = _actor(request)
    rule = None if rule_id is None else await run_in_threadpool(store.get_rule, rule_id)
    if rule_id is None or rule is None:
        return await _missing(request, "alert rule", form.get("rule_id", [""])[0])
    gone = await run_in_threadpool(lambda: store.delete_rule(rule_id, actor=actor))
    if not gone:
        return await _missing(request, "alert rule", str(rule_id))
    return _redirect("/alerts", f"Alert rule {_rule_name(rule)} removed; its history stays.")


async def _missing(request: Request, what: str, given: str) -> HTMLResponse:
    message = f"There is no {what} {given[:20]!r}: nothing changed."
    return await run_in_threadpool(lambda: _render_alerts(request, error=message, status_code=404))


@router.post("/admin/alerts/silence")
async def silence(request: Request) -> Response:
    """Silence a rule, or one tenant's instance of a per-tenant rule, for a while or until
    lifted; or lift it (``lift``)."""
    form = await _checked_form(request)
    store = _store(request)
    rule_id = _posted_id(form, "rule_id")
    rule = None if rule_id is None else await run_in_threadpool(store.get_rule, rule_id)
    if rule_id is None or rule is None:
        return await _missing(request, "alert rule", form.get("rule_id", [""])[0])
    # one tenant's instance: the form says so (the tenant "" is a tenant too)
    tenant = form.get("tenant_id", [""])[0] if "instance" in form else None
    if tenant is not None and not rule.per_tenant:
        message = "Only a rule evaluated for each tenant can be silenced for one tenant."
        return await run_in_threadpool(
            lambda: _render_rule(request, rule, error=message, status_code=INVALID)
        )
    lift = "lift" in form
    choice = form.get("duration", [""])[0]
    until = None if lift else views.silence_end(choice, views.now_utc())
    if not lift and until is None:
        choices = ", ".join(label for _, label in views.SILENCE_CHOICES)
        message = f"Choose how long to silence it for ({choices})."
        return await run_in_threadpool(
            lambda: _render_rule(request, rule, error=message, status_code=INVALID)
        )
    actor = _actor(request)
    await run_in_threadpool(lambda: store.silence(rule_id, tenant, until, actor=actor))
    what = f"alert rule {_rule_name(rule)}"
    if tenant is not None:
        what += f" for tenant {tenant_label(tenant)}"
    if until is None:
        message = f"Silence of {what} lifted: it notifies again."
    elif until >= views.FOREVER:
        message = f"Notifications of {what} silenced until lifted."
    else:
        message = f"Notifications of {what} silenced until {views.until_text(until)} UTC."
    return _redirect(_rule_url(rule_id), message)


# -- contact points ------------------------------------------------------------------------


def _render_contact_form(
    request: Request,
    *,
    contact: ContactPoint | None,
    values: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
) -> HTMLResponse:
    return pages.render(
        request,
        "admin_contact.html",
        status_code=status_code,
        nav="alerts",
        contact_id=contact.id if contact else None,
        values=values,
        errors=errors,
        kinds=CONTACT_KINDS,
        kind_labels=views.KIND_LABELS,
        fields=FIELDS,
        secrets=SECRET_FIELDS,
        labels=views.CONTACT_LABELS,
        security=SMTP_SECURITY,
        hints=views.secret_hints(contact),
    )


@router.get("/admin/alerts/contact")
def contact_form(request: Request, picked: PickedDep, id: OptionalId = None) -> HTMLResponse:
    """An empty form for a new contact point, or contact point ``id``'s (no secret in it)."""
    contact = None
    if id is not None:
        contact = _store(request).get_contact(id)
        if contact is None:
            raise NotFound(f"no contact point {id}")
    return _render_contact_form(
        request, contact=contact, values=views.contact_values(contact), errors={}
    )


@router.post("/admin/alerts/contact")
async def contact_save(request: Request) -> Response:
    form = await _checked_form(request)
    store = _store(request)
    contact_id = _posted_id(form, "id")
    current = None
    if contact_id is not None:
        current = await run_in_threadpool(store.get_contact, contact_id)
        if current is None:
            raise NotFound(f"no contact point {contact_id}: it was removed")
    name, kind, settings, values = views.contact_submission(form)
    try:
        contact = check_contact(name, kind, settings, keep=current)
    except InvalidFields as exc:
        errors = views.contact_errors(kind, exc.problems)
        return _render_contact_form(
            request, contact=current, values=values, errors=errors, status_code=INVALID
        )
    actor = _actor(request)
    if contact_id is None:
        saved: ContactPoint | None = await run_in_threadpool(
            lambda: store.add_contact(contact, actor=actor)
        )
    else:
        saved = await run_in_threadpool(
            lambda: store.replace_contact(contact_id, contact, actor=actor)
        )
    if saved is None:
        raise NotFound(f"no contact point {contact_id}: it was removed")
    verb = "created" if contact_id is None else "saved"
    return _redirect(
        "/alerts", f"Contact point “{saved.name}” {verb}. Send a test to check that it works."
    )


@router.post("/admin/alerts/contact/delete")
async def contact_delete(request: Request) -> Response:
    form = await _checked_form(request)
    store = _store(request)
    contact_id = _posted_id(form, "contact_id")
    contact = None if contact_id is None else await run_in_threadpool(store.get_contact, contact_id)
    if contact_id is None or contact is None:
        return await _missing(request, "contact point", form.get("contact_id", [""])[0])
    actor = _actor(request)
    try:
        gone = await run_in_threadpool(lambda: store.delete_contact(contact_id, actor=actor))
    except Conflict as exc:  # a rule sends to it: the page says which
        message, status = f"Contact point “{contact.name}” was not removed: {exc.message}.", 409
        return await run_in_threadpool(
            lambda: _render_alerts(request, error=message, status_code=status)
        )
    if not gone:
        return await _missing(request, "contact point", str(contact_id))
    return _redirect("/alerts", f"Contact point “{contact.name}” removed.")


@router.post("/admin/alerts/contact/test")
async def contact_test(request: Request) -> Response:
    """Send a test notification now; the flash (and the contact point's status) says
    whether it arrived."""
    form = await _checked_form(request)
    store = _store(request)
    contact_id = _posted_id(form, "contact_id")
    contact = None if contact_id is None else await run_in_threadpool(store.get_contact, contact_id)
    if contact is None:
        return await _missing(request, "contact point", form.get("contact_id", [""])[0])
    url = services_of(request).settings.dashboard_url
    after = await run_in_threadpool(send_test, store, contact, url)
    if after.status == "ok":
        message = f"Test notification delivered to “{after.name}”."
    else:
        message = f"Test notification to “{after.name}” failed: {after.last_error}"
    return _redirect("/alerts", message)
