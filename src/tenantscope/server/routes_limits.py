"""Limits in the HTTP API.

- ``/v1/limits/check|extend|settle|release``: decisions before the call, for the SDK (and
  anything else holding an ingest key). A tenant-bound ingest key decides the tenant.
- ``/api/limits`` (definitions) and ``/api/limits/approvals`` (temporary raises): admin keys
  write, admin and reader keys read (``access.CONFIG``).
- ``/api/limits/status``: every limit of each tenant as it stands, with blocked calls; a
  tenant key sees its own tenant only.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from tenantscope.errors import Forbidden, InvalidFields, NotFound
from tenantscope.limits.definitions import LIMIT_FIELDS, check_approval, check_limit
from tenantscope.limits.figures import DEFAULT_TTL_S, Call
from tenantscope.limits.limiter import MAX_TTL_S, Limiter
from tenantscope.limits.periods import period
from tenantscope.query.params import TimeRange
from tenantscope.query.scope import Scope
from tenantscope.records import STATUSES
from tenantscope.server.keys import Principal
from tenantscope.server.routes_alerts import read_json
from tenantscope.server.routes_keys import api_actor
from tenantscope.server.services import Services, services_of
from tenantscope.server.strict_params import reject_unknown_params
from tenantscope.storage.limit_rows import approval_snapshot, limit_snapshot
from tenantscope.storage.limit_state import LimitDef
from tenantscope.storage.validation import MAX_TENANT_ID

decisions = APIRouter(prefix="/v1/limits", tags=["limits"])
router = APIRouter(
    prefix="/api/limits", tags=["limits"], dependencies=[Depends(reject_unknown_params)]
)
LimitId = Annotated[int, Path(ge=1, le=2**31 - 1)]
MAX_TOKENS = 10**8
ATTRIBUTION = ("tenant_id", "workspace_id", "feature", "user_id", "provider", "model")
CHECK_FIELDS = (*ATTRIBUTION, "input_tokens", "max_tokens", "estimated_cost_usd", "ttl_s")
SETTLE_FIELDS = (
    "reservation_id",
    "status",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "model",
    "duration_ms",
    "error_type",
    "error_message",
)


def _limiter(request: Request) -> Limiter:
    return services_of(request).limiter


def _object(data: Any, fields: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidFields({"body": f"must be a JSON object of {what}'s fields"})
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InvalidFields({u: f"not a field (fields: {', '.join(fields)})" for u in unknown})
    return data


def _tokens(problems: dict[str, str], data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
        problems[name] = f"a whole number from 0 to {MAX_TOKENS}"
        return None
    return value


def _money(problems: dict[str, str], data: dict[str, Any], name: str) -> Decimal | None:
    value = data.get(name)
    if value in (None, ""):
        return None
    try:
        if isinstance(value, bool) or isinstance(value, float):
            raise InvalidOperation  # binary floats are not exact: send a decimal string
        out = Decimal(str(value))
        if not out.is_finite() or out < 0 or out > 10**9:
            raise InvalidOperation
    except InvalidOperation:
        problems[name] = 'a decimal string of USD, 0 or more (e.g. "0.0125")'
        return None
    return out


def _tenant_for(principal: Principal | None, asked: Any) -> str:
    """The call's tenant: a bound key's own (another one in the body: 403)."""
    bound = (
        principal.tenant_id
        if principal is not None and principal.role in ("ingest", "tenant") and principal.tenant_id
        else None
    )
    if bound is not None:
        if asked not in (None, "", bound):
            raise Forbidden(f"this key is bound to tenant {bound!r}; it cannot ask for {asked!r}")
        return bound
    return "" if asked is None else str(asked)


def parse_call(principal: Principal | None, data: Any) -> Call:
    data = _object(data, CHECK_FIELDS, "a limit check")
    problems: dict[str, str] = {}
    text: dict[str, str] = {}
    for name in ATTRIBUTION:
        value = data.get(name)
        if value is None:
            value = ""
        if not isinstance(value, str) or len(value) > MAX_TENANT_ID:
            problems[name] = f"a string of at most {MAX_TENANT_ID} characters"
            value = ""
        text[name] = value
    input_tokens = _tokens(problems, data, "input_tokens") or 0
    max_tokens = _tokens(problems, data, "max_tokens")
    cost = _money(problems, data, "estimated_cost_usd")
    ttl = data.get("ttl_s", DEFAULT_TTL_S)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL_S:
        problems["ttl_s"] = f"seconds the reservation lives: 1 to {MAX_TTL_S}"
        ttl = DEFAULT_TTL_S
    if problems:
        raise InvalidFields(problems)
    tenant = _tenant_for(principal, text.pop("tenant_id"))
    return Call(
        tenant_id=tenant,
        input_tokens=input_tokens,
        max_tokens=max_tokens,
        estimated_cost_usd=cost,
        ttl_s=ttl,
        **text,
    )


def _reservation_id(data: dict[str, Any]) -> str:
    rid = data.get("reservation_id")
    if not isinstance(rid, str) or not 1 <= len(rid) <= 64:
        raise InvalidFields({"reservation_id": "required: the id /v1/limits/check answered"})
    return rid


def _owned(principal: Principal | None, limiter: Limiter, rid: str) -> None:
    """A bound key acts only on its own tenant's reservations."""
    r = limiter.reservation(rid)
    if r is None:
        raise NotFound(f"no reservation {rid} (unknown, settled or expired)")
    _tenant_for(principal, r.tenant_id)


# -- the decisions, one function each: served by the routes below for the API reference
# and by server/limits_fast.py, which answers them ahead of the middleware stack --------
def do_check(svc: Services, principal: Principal | None, data: Any) -> dict[str, Any]:
    return svc.limiter.check(parse_call(principal, data)).as_json()


def do_extend(svc: Services, principal: Principal | None, data: Any) -> dict[str, Any]:
    data = _object(data, ("reservation_id", "output_tokens"), "an extension")
    rid = _reservation_id(data)
    problems: dict[str, str] = {}
    more = _tokens(problems, data, "output_tokens")
    if more is None or more < 1:
        problems.setdefault("output_tokens", f"required: 1 to {MAX_TOKENS}")
    if problems:
        raise InvalidFields(problems)
    assert more is not None
    _owned(principal, svc.limiter, rid)
    return svc.limiter.extend(rid, more).as_json()


async def do_settle(svc: Services, principal: Principal | None, data: Any) -> dict[str, Any]:
    data = _object(data, SETTLE_FIELDS, "a settlement")
    rid = _reservation_id(data)
    problems: dict[str, str] = {}
    status = data.get("status", "ok")
    if status not in STATUSES or status == "blocked":
        problems["status"] = "ok, error or cancelled"
    counts = {
        name: _tokens(problems, data, name) or 0
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
        )
    }
    cost = _money(problems, data, "cost_usd")
    texts = {}
    for name, limit in (("model", 256), ("error_type", 256), ("error_message", 4000)):
        value = data.get(name) or ""
        if not isinstance(value, str) or len(value) > limit:
            problems[name] = f"a string of at most {limit} characters"
            value = ""
        texts[name] = value
    duration = data.get("duration_ms") or 0.0
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration < 0:
        problems["duration_ms"] = "milliseconds, 0 or more"
        duration = 0.0
    if problems:
        raise InvalidFields(problems)
    _owned(principal, svc.limiter, rid)
    record = svc.limiter.settle_record(
        rid,
        status=status,
        cost_usd=cost,
        duration_ms=float(duration),
        counts=counts,
        texts=texts,
    )
    # priced here and written like a decode worker's batch: answered once it is in the
    # write-ahead log (durable), stored with the next batch; until then the reservation
    # holds the call's real cost, so the limit sees neither a gap nor the estimate
    svc.price(record)
    svc.limiter.hold_actual(rid, record.cost_usd or Decimal(0), record.total_tokens)
    await svc.settlements.write([record], sender=principal.sender if principal else None)
    return {
        "settled": True,
        "event_id": record.event_id,
        "cost_usd": None if record.cost_usd is None else format(record.cost_usd, "f"),
    }


def do_release(svc: Services, principal: Principal | None, data: Any) -> dict[str, Any]:
    data = _object(data, ("reservation_id", "happened"), "a release")
    rid = _reservation_id(data)
    happened = data.get("happened", False)
    if not isinstance(happened, bool):
        raise InvalidFields(
            {"happened": "true (the call ran: its place in the rate window stays) or false"}
        )
    if svc.limiter.reservation(rid) is not None:
        _owned(principal, svc.limiter, rid)
    return {"released": svc.limiter.release(rid, happened=happened)}


def _doc(fields: tuple[str, ...], example: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {f: {} for f in fields},
                        "additionalProperties": False,
                    },
                    "example": example,
                }
            },
        },
        "responses": {422: {"description": "fields to fix, each named in error.details"}},
    }


def _principal(request: Request) -> Principal | None:
    return getattr(request.state, "principal", None)


# -- decisions ---------------------------------------------------------------------------
@decisions.post(
    "/check",
    summary="May this call go ahead? Allowed calls hold a reservation",
    description=(
        "Answers 200 either way: `allowed`, the limit that decided (`decided_by`: on a"
        " refusal the one that refused, else the tightest), `remaining` of it, `retry_after`"
        " seconds (null: allowed, or the call is larger than the limit), and on an allowed"
        " call a `reservation_id` holding the call's estimated maximum cost and tokens."
        " Put the id on the call's span (`tenantscope.reservation_id`) and it is settled"
        " at the real cost when the span is stored; or use /v1/limits/settle. A refused"
        " call is recorded with status `blocked`. See docs/limits.md."
    ),
    openapi_extra=_doc(
        CHECK_FIELDS,
        {
            "feature": "summarize",
            "model": "gpt-4o-mini",
            "input_tokens": 1200,
            "max_tokens": 400,
        },
        "the call's attribution, model, prompt size estimate and max_tokens",
    ),
)
async def check(request: Request) -> dict[str, Any]:
    return do_check(services_of(request), _principal(request), await read_json(request))


@decisions.post(
    "/extend",
    summary="Hold more output tokens for a stream that passed its reservation",
    openapi_extra=_doc(
        ("reservation_id", "output_tokens"),
        {"reservation_id": "r_…", "output_tokens": 1024},
        "the reservation and how many more output tokens to hold",
    ),
)
async def extend(request: Request) -> dict[str, Any]:
    return do_extend(services_of(request), _principal(request), await read_json(request))


@decisions.post(
    "/settle",
    summary="Record a reserved call's real usage (for calls without an instrumented span)",
    description=(
        "Writes the call through ingest as a record with the reservation's attribution"
        " (ids derived from the reservation: settling twice counts once) and answers once it is"
        " durable (in the write-ahead log); the reservation is settled at the record's"
        " cost when it is stored, moments later."
    ),
    openapi_extra=_doc(
        SETTLE_FIELDS,
        {"reservation_id": "r_…", "status": "ok", "input_tokens": 900, "output_tokens": 120},
        "the reservation and the call's real usage",
    ),
)
async def settle(request: Request) -> dict[str, Any]:
    return await do_settle(services_of(request), _principal(request), await read_json(request))


@decisions.post(
    "/release",
    summary="Drop a reservation's hold (nothing is recorded)",
    description=(
        "The call did not happen: its hold, its place in the rate windows and its tokens"
        " go. With `happened: true` (the call ran but nothing will report it) only the"
        " hold goes; its place in the minute stays."
    ),
    openapi_extra=_doc(
        ("reservation_id", "happened"),
        {"reservation_id": "r_…"},
        "the reservation; happened (default false)",
    ),
)
async def release(request: Request) -> dict[str, Any]:
    return do_release(services_of(request), _principal(request), await read_json(request))


# -- definitions -------------------------------------------------------------------------
def limit_json(limit: LimitDef) -> dict[str, Any]:
    out = limit_snapshot(limit)
    assert out is not None
    return {**out, "ref": limit.ref}


@router.get("", summary="Every limit definition")
def list_limits(request: Request) -> list[dict[str, Any]]:
    return [limit_json(x) for x in services_of(request).config.limits.list_limits()]


@router.post(
    "",
    summary="Create a limit (a rate limit or a budget)",
    status_code=201,
    openapi_extra=_doc(
        LIMIT_FIELDS,
        {
            "name": "starter rate",
            "kind": "rate",
            "tier": "starter",
            "requests_per_minute": 10,
        },
        "kind and name are required; a rate limit needs requests_per_minute and/or"
        " tokens_per_minute, a budget amount_usd",
    ),
)
async def create_limit(request: Request) -> dict[str, Any]:
    limit = check_limit(await read_json(request))
    store = services_of(request).config.limits
    added = await run_in_threadpool(store.add_limit, limit, actor=api_actor(request))
    return limit_json(added)


@router.get("/status", summary="Every limit of each tenant now: used, remaining, blocked calls")
def limits_status(
    request: Request,
    tenant_id: Annotated[str | None, Query(max_length=MAX_TENANT_ID)] = None,
) -> dict[str, Any]:
    return status_of(request, tenant_id)


def status_of(request: Request, tenant_id: str | None) -> dict[str, Any]:
    """``status_for`` the caller of ``request`` (its scope)."""
    return status_for(services_of(request), request.state.scope, tenant_id)


def status_for(svc: Services, scope: Scope, tenant_id: str | None) -> dict[str, Any]:
    """The limits of the tenants ``scope`` sees (a tenant key: its own; else ``tenant_id``
    or every configured tenant and every tenant with spend this month): the API's, the
    dashboard's and the CLI's one answer."""
    tenants: list[str]
    if scope.tenant_id is not None:
        if tenant_id not in (None, scope.tenant_id):
            raise NotFound(f"no tenant {tenant_id!r}")
        tenants = [scope.tenant_id]
    elif tenant_id is not None:
        tenants = [tenant_id]
    else:
        tenants = sorted(limited_tenants(svc))
    limiter = svc.limiter
    now = limiter.clock()
    month = TimeRange(*period(now))
    blocks = svc.queries.windows.blocks(scope, month, tenants)
    figures = limiter.status(tenants)
    return {
        "tenants": [
            {
                "tenant_id": t,
                "limits": [f.as_json() for f in figures.get(t, [])],
                "blocked_this_month": sum(blocks.get(t, {}).values()),
                "blocked_by_limit": blocks.get(t, {}),
            }
            for t in tenants
        ],
    }


def limited_tenants(svc: Services) -> set[str]:
    """Tenants worth listing: configured ones, those with limits of their own, and those
    that spent this month."""
    now = svc.limiter.clock()
    spent = svc.queries.windows.cost_by_tenant(Scope.all(), TimeRange(*period(now)))
    own = {x.tenant_id for x in svc.config.limits.list_limits() if x.tenant_id}
    return {t.tenant_id for t in svc.config.list_tenants()} | own | set(spent)


@router.get("/approvals", summary="Temporary raises (active=true: only those in force)")
def list_approvals(
    request: Request, active: Annotated[bool, Query()] = False
) -> list[dict[str, Any]]:
    store = services_of(request).config.limits
    at = datetime.now(timezone.utc) if active else None
    return [approval_snapshot(a) for a in store.list_approvals(active_at=at)]


@router.post(
    "/approvals",
    summary="Grant a temporary raise of a limit for one tenant",
    status_code=201,
    openapi_extra=_doc(
        (
            "limit",
            "tenant_id",
            "subject",
            "amount_usd",
            "requests_per_minute",
            "tokens_per_minute",
            "expires_at",
            "reason",
        ),
        {
            "limit": "L2",
            "amount_usd": "50",
            "expires_at": "2026-12-31T00:00:00Z",
            "reason": "quarter-end batch run",
        },
        "limit (L<id>, tenant:rate or tenant:budget), tenant_id, how much more, expires_at",
    ),
)
async def grant_approval(request: Request) -> dict[str, Any]:
    svc = services_of(request)
    principal: Principal = request.state.principal
    approval = check_approval(
        await read_json(request),
        svc.config.limits.list_limits(),
        now=datetime.now(timezone.utc),
        granted_by=principal.name or principal.key_id or principal.role,
    )
    added = await run_in_threadpool(
        svc.config.limits.add_approval, approval, actor=api_actor(request)
    )
    return approval_snapshot(added)


@router.post(
    "/approvals/{approval_id}/revoke", summary="End a temporary raise now", status_code=200
)
def revoke_approval(
    approval_id: Annotated[int, Path(ge=1, le=2**31 - 1)], request: Request
) -> dict[str, Any]:
    store = services_of(request).config.limits
    if not store.revoke_approval(approval_id, datetime.now(timezone.utc), actor=api_actor(request)):
        raise NotFound(f"no approval {approval_id}")
    found = [a for a in store.list_approvals() if a.id == approval_id]
    return approval_snapshot(found[0])


@router.get("/{limit_id}", summary="One limit definition")
def get_limit(limit_id: LimitId, request: Request) -> dict[str, Any]:
    limit = services_of(request).config.limits.get_limit(limit_id)
    if limit is None:
        raise NotFound(f"no limit {limit_id}")
    return limit_json(limit)


@router.patch(
    "/{limit_id}",
    summary="Change a limit (fields left out keep their values)",
    openapi_extra=_doc(LIMIT_FIELDS, {"requests_per_minute": 20}, "any of the limit's fields"),
)
async def update_limit(limit_id: LimitId, request: Request) -> dict[str, Any]:
    store = services_of(request).config.limits
    current = await run_in_threadpool(store.get_limit, limit_id)
    if current is None:
        raise NotFound(f"no limit {limit_id}")
    limit = check_limit(await read_json(request), base=current)
    new = await run_in_threadpool(store.replace_limit, limit_id, limit, actor=api_actor(request))
    if new is None:
        raise NotFound(f"no limit {limit_id}")
    return limit_json(new)


@router.delete("/{limit_id}", summary="Remove a limit (its approvals end)", status_code=204)
def delete_limit(limit_id: LimitId, request: Request) -> None:
    if not services_of(request).config.limits.delete_limit(limit_id, actor=api_actor(request)):
        raise NotFound(f"no limit {limit_id}")
