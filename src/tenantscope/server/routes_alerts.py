"""The alerts in the JSON API: rules, contact points (with a "send test"), the states of
each rule's instances, their history, and silences. Admin keys write; admin and reader
keys read; tenant keys see none of it (``access.CONFIG``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from tenantscope.alerts.contacts import ContactPoint, check_contact, public_settings
from tenantscope.alerts.evaluator import utcnow
from tenantscope.alerts.notifications import Notification
from tenantscope.alerts.notifiers import DeliveryFailed, deliver
from tenantscope.alerts.rules import RULE_FIELDS, check_rule, rule_json
from tenantscope.errors import BadRequest, InvalidFields, NotFound
from tenantscope.query.models import Timestamp
from tenantscope.query.params import parse_time
from tenantscope.server.body import read_body
from tenantscope.server.routes_keys import api_actor
from tenantscope.server.services import services_of
from tenantscope.server.strict_params import reject_unknown_params
from tenantscope.storage.alert_state import AlertInstance, AlertStore, HistoryEntry

router = APIRouter(
    prefix="/api/alerts", tags=["alerts"], dependencies=[Depends(reject_unknown_params)]
)
MAX_BODY_BYTES = 64 * 1024
RuleId = Annotated[int, Path(ge=1, le=2**31 - 1)]
ContactId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class InstanceOut(BaseModel):
    rule_id: int
    tenant_id: Annotated[str | None, Field(description="null: the rule's one figure")]
    state: Annotated[str, Field(description="ok, pending, firing, warning or no_data")]
    since: Timestamp
    value: Annotated[str | None, Field(description="the last figure (decimal text)")]
    requests: int
    evaluated_at: Timestamp
    silenced_until: Timestamp


class HistoryOut(BaseModel):
    id: int | None
    rule_id: int
    tenant_id: str | None
    at: Timestamp
    from_state: str
    to_state: str
    value: str | None
    note: str


class ContactOut(BaseModel):
    id: int | None
    name: str
    kind: str
    settings: Annotated[dict[str, Any], Field(description="secrets shown as (set)")]
    status: Annotated[str, Field(description="untested, ok or failing (last delivery)")]
    last_error: str
    last_attempt_at: Timestamp


def instance_out(store_rule_per_tenant: bool, i: AlertInstance) -> InstanceOut:
    return InstanceOut(
        rule_id=i.rule_id,
        tenant_id=i.key if store_rule_per_tenant else None,
        state=i.state,
        since=i.since,
        value=None if i.value is None else format(i.value, "f"),
        requests=i.requests,
        evaluated_at=i.evaluated_at,
        silenced_until=i.silenced_until,
    )


def history_out(per_tenant: dict[int, bool], h: HistoryEntry) -> HistoryOut:
    return HistoryOut(
        id=h.id,
        rule_id=h.rule_id,
        tenant_id=h.key if per_tenant.get(h.rule_id, True) else None,
        at=h.at,
        from_state=h.from_state,
        to_state=h.to_state,
        value=None if h.value is None else format(h.value, "f"),
        note=h.note,
    )


def contact_out(c: ContactPoint) -> ContactOut:
    return ContactOut(
        id=c.id,
        name=c.name,
        kind=c.kind,
        settings=public_settings(c),
        status=c.status,
        last_error=c.last_error,
        last_attempt_at=c.last_attempt_at,
    )


def _store(request: Request) -> AlertStore:
    return services_of(request).config.alerts


async def read_json(request: Request) -> Any:
    """The request's JSON body (at most ``MAX_BODY_BYTES``; 400 when it is not JSON)."""
    raw = await read_body(request, MAX_BODY_BYTES)
    try:
        return json.loads(raw or b"null")
    except ValueError:
        raise BadRequest("the body must be JSON") from None


def _rule_body_doc(description: str) -> dict[str, Any]:
    example = {
        "name": "apex-legal p95 over 2 s",
        "metric": "latency_p95",
        "scope": "trace",
        "comparator": ">",
        "threshold": "2000",
        "window": "5m",
        "tenant_ids": ["apex-legal"],
        "contact_ids": [1],
    }
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {f: {} for f in RULE_FIELDS},
                        "additionalProperties": False,
                    },
                    "example": example,
                }
            },
        },
        "responses": {422: {"description": "fields to fix, each named in error.details"}},
    }


# -- rules -------------------------------------------------------------------------------
@router.get("/rules", summary="Every alert rule, with how many of its instances fire")
def list_rules(request: Request) -> list[dict[str, Any]]:
    store = _store(request)
    counts: dict[int, dict[str, int]] = {}
    for i in store.instances():
        by = counts.setdefault(i.rule_id, {})
        by[i.state] = by.get(i.state, 0) + 1
    out = []
    for rule in store.list_rules():
        assert rule.id is not None
        out.append({**rule_json(rule), "states": counts.get(rule.id, {})})
    return out


@router.post(
    "/rules",
    summary="Create an alert rule",
    status_code=201,
    openapi_extra=_rule_body_doc(
        "metric, comparator and threshold are required; durations like 30s, 5m, 1h, 1d"
    ),
)
async def create_rule(request: Request) -> dict[str, Any]:
    rule = check_rule(await read_json(request))
    added = await run_in_threadpool(_store(request).add_rule, rule, actor=api_actor(request))
    return rule_json(added)


@router.get("/rules/{rule_id}", summary="One rule, its instances' states")
def get_rule(rule_id: RuleId, request: Request) -> dict[str, Any]:
    store = _store(request)
    rule = store.get_rule(rule_id)
    if rule is None:
        raise NotFound(f"no alert rule {rule_id}")
    instances = [
        instance_out(rule.per_tenant, i).model_dump(mode="json") for i in store.instances(rule_id)
    ]
    return {**rule_json(rule), "instances": instances}


@router.patch(
    "/rules/{rule_id}",
    summary="Change a rule (fields left out keep their values)",
    openapi_extra=_rule_body_doc("any of the rule's fields"),
)
async def update_rule(rule_id: RuleId, request: Request) -> dict[str, Any]:
    store = _store(request)
    current = await run_in_threadpool(store.get_rule, rule_id)
    if current is None:
        raise NotFound(f"no alert rule {rule_id}")
    rule = check_rule(await read_json(request), base=current)
    new = await run_in_threadpool(store.replace_rule, rule_id, rule, actor=api_actor(request))
    if new is None:
        raise NotFound(f"no alert rule {rule_id}")
    return rule_json(new)


@router.delete("/rules/{rule_id}", summary="Remove a rule (its history stays)", status_code=204)
def delete_rule(rule_id: RuleId, request: Request) -> None:
    if not _store(request).delete_rule(rule_id, actor=api_actor(request)):
        raise NotFound(f"no alert rule {rule_id}")


class SilenceIn(BaseModel):
    until: Annotated[datetime | None, Field(description="RFC 3339; null lifts the silence")] = None
    tenant_id: Annotated[
        str | None, Field(description="one tenant's instance of a per-tenant rule")
    ] = None


@router.post(
    "/rules/{rule_id}/silence",
    summary="Silence a rule, or one tenant of it, until a time (null lifts it)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SilenceIn.model_json_schema()}},
        }
    },
)
async def silence_rule(rule_id: RuleId, request: Request) -> dict[str, Any]:
    data = await read_json(request)
    if not isinstance(data, dict) or set(data) - {"until", "tenant_id"}:
        raise InvalidFields({"body": "an object with until (RFC 3339 or null) and tenant_id"})
    until = None
    if data.get("until") not in (None, ""):
        try:
            until = parse_time(str(data["until"]), "until")
        except BadRequest as exc:
            raise InvalidFields({"until": exc.message}) from None
    store = _store(request)
    rule = store.get_rule(rule_id)
    if rule is None:
        raise NotFound(f"no alert rule {rule_id}")
    tenant = data.get("tenant_id")
    if tenant is not None and (not isinstance(tenant, str) or not rule.per_tenant):
        raise InvalidFields({"tenant_id": "only for a per-tenant rule: a tenant id"})
    await run_in_threadpool(store.silence, rule_id, tenant, until, actor=api_actor(request))
    return await run_in_threadpool(get_rule, rule_id, request)


@router.get("/instances", summary="Instance states across rules (e.g. state=firing)")
def list_instances(
    request: Request,
    state: Annotated[str | None, Query(max_length=16)] = None,
    rule_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    tenant_id: Annotated[str | None, Query(max_length=1024)] = None,
) -> list[InstanceOut]:
    store = _store(request)
    per_tenant = {r.id: r.per_tenant for r in store.list_rules() if r.id is not None}
    out = []
    for i in store.instances(rule_id):
        if state is not None and i.state != state:
            continue
        if tenant_id is not None and (not per_tenant.get(i.rule_id) or i.key != tenant_id):
            continue
        out.append(instance_out(per_tenant.get(i.rule_id, True), i))
    return out


@router.get("/history", summary="State changes, newest first")
def list_history(
    request: Request,
    rule_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    tenant_id: Annotated[str | None, Query(max_length=1024)] = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="the next page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[HistoryOut]:
    store = _store(request)
    per_tenant = {r.id: r.per_tenant for r in store.list_rules() if r.id is not None}
    rows = store.history(rule_id=rule_id, key=tenant_id, before_id=before_id, limit=limit)
    return [history_out(per_tenant, h) for h in rows]


# -- contact points ----------------------------------------------------------------------
def _contact_doc(description: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                "application/json": {
                    "example": {
                        "name": "ops email",
                        "kind": "email",
                        "settings": {
                            "to": ["ops@example.com"],
                            "from_addr": "alerts@example.com",
                            "host": "smtp.example.com",
                            "port": 587,
                            "security": "starttls",
                            "username": "alerts",
                            "password": "…",
                        },
                    }
                }
            },
        },
        "responses": {422: {"description": "fields to fix, each named in error.details"}},
    }


@router.get("/contacts", summary="Contact points (secrets never shown)")
def list_contacts(request: Request) -> list[ContactOut]:
    return [contact_out(c) for c in _store(request).list_contacts()]


def _contact_fields(data: Any) -> tuple[Any, Any, Any]:
    if not isinstance(data, dict):
        raise InvalidFields({"body": "an object with name, kind and settings"})
    unknown = set(data) - {"name", "kind", "settings"}
    if unknown:
        raise InvalidFields(
            {f: "not a field (fields: name, kind, settings)" for f in sorted(unknown)}
        )
    return data.get("name"), data.get("kind"), data.get("settings", {})


@router.post(
    "/contacts",
    summary="Create a contact point: slack (url), webhook (url, secret) or email (SMTP)",
    status_code=201,
    openapi_extra=_contact_doc("name, kind (slack, webhook, email) and the kind's settings"),
)
async def create_contact(request: Request) -> ContactOut:
    contact = check_contact(*_contact_fields(await read_json(request)))
    added = await run_in_threadpool(_store(request).add_contact, contact, actor=api_actor(request))
    return contact_out(added)


@router.patch(
    "/contacts/{contact_id}",
    summary="Change a contact point (a secret left out keeps its value)",
    openapi_extra=_contact_doc("name, kind and settings; omitted ones keep their values"),
)
async def update_contact(contact_id: ContactId, request: Request) -> ContactOut:
    store = _store(request)
    current = await run_in_threadpool(store.get_contact, contact_id)
    if current is None:
        raise NotFound(f"no contact point {contact_id}")
    name, kind, settings = _contact_fields(await read_json(request))
    if settings == {} and kind in (None, current.kind):
        settings = {k: v for k, v in current.settings.items()}
    contact = check_contact(
        current.name if name is None else name,
        current.kind if kind is None else kind,
        settings,
        keep=current,
    )
    new = await run_in_threadpool(
        store.replace_contact, contact_id, contact, actor=api_actor(request)
    )
    if new is None:
        raise NotFound(f"no contact point {contact_id}")
    return contact_out(new)


@router.delete(
    "/contacts/{contact_id}",
    summary="Remove a contact point (409 while a rule sends to it)",
    status_code=204,
)
def delete_contact(contact_id: ContactId, request: Request) -> None:
    if not _store(request).delete_contact(contact_id, actor=api_actor(request)):
        raise NotFound(f"no contact point {contact_id}")


def send_test(store: AlertStore, contact: ContactPoint, base_url: str) -> ContactPoint:
    """Send a test notification now; the contact point's status says how it went."""
    assert contact.id is not None
    now = utcnow()
    n = Notification(
        id=f"test:{contact.id}:{int(now.timestamp())}",
        event="test",
        rule_id=0,
        rule_name="Test notification",
        severity="info",
        tenant_id=None,
        metric="requests",
        metric_label="requests",
        value=None,
        threshold="",
        window="",
        window_start=now,
        window_end=now,
        link=f"{base_url}/alerts" if base_url else "",
        summary=f"tenantscope can reach contact point {contact.name!r}",
    )
    try:
        deliver(contact, n)
    except DeliveryFailed as exc:
        store.set_contact_status(contact.id, "failing", str(exc), now)
    else:
        store.set_contact_status(contact.id, "ok", "", now)
    found = store.get_contact(contact.id)
    assert found is not None
    return found


@router.post(
    "/contacts/{contact_id}/test",
    summary="Send a test notification now (the answer says whether it arrived)",
)
async def test_contact(contact_id: ContactId, request: Request) -> ContactOut:
    store = _store(request)
    contact = await run_in_threadpool(store.get_contact, contact_id)
    if contact is None:
        raise NotFound(f"no contact point {contact_id}")
    url = services_of(request).settings.dashboard_url
    return contact_out(await run_in_threadpool(send_test, store, contact, url))
