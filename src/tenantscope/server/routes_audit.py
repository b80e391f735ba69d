"""The audit log of config changes in the JSON API (admin keys only), and the paging the
dashboard's audit page shares with it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from tenantscope.errors import BadRequest
from tenantscope.query.models import Page, Timestamp
from tenantscope.query.params import TIME_BOUNDS, parse_time
from tenantscope.server.services import services_of
from tenantscope.server.strict_params import reject_unknown_params
from tenantscope.storage.base import AUDIT_ACTIONS, AuditAction, AuditEntry, ConfigStore

router = APIRouter(prefix="/api", tags=["audit"], dependencies=[Depends(reject_unknown_params)])
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


class ActorOut(BaseModel):
    kind: Annotated[
        str,
        Field(description="how the change came: session (a dashboard form), api, cli, system"),
    ]
    key_id: str | None
    name: Annotated[str, Field(description="the key's label at the time")]
    role: str | None


class AuditEntryOut(BaseModel):
    id: int
    at: Timestamp
    actor: ActorOut
    action: AuditAction
    target: Annotated[str, Field(description="the tenant id, model or key id changed")]
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def _out(entry: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        id=entry.id,
        at=entry.at,
        actor=ActorOut.model_validate(entry.actor, from_attributes=True),
        action=entry.action,  # type: ignore[arg-type]  # the store writes only AUDIT_ACTIONS
        target=entry.target,
        before=entry.before,
        after=entry.after,
    )


def audit_page(
    config: ConfigStore,
    *,
    action: str | None = None,
    target: str | None = None,
    since: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> tuple[list[AuditEntry], str | None]:
    """One page of entries, newest first, and the cursor of the next (None: the last).
    Bad filters are 400s that say what to send."""
    if action is not None and action not in AUDIT_ACTIONS:
        raise BadRequest(f"action must be one of {', '.join(AUDIT_ACTIONS)}")
    before_id: int | None = None
    if cursor:
        if not cursor.isdigit() or not 0 < int(cursor) < 2**63:
            raise BadRequest("cursor: not a cursor this server gave (use next_cursor)")
        before_id = int(cursor)
    size = limit or DEFAULT_LIMIT
    if not 1 <= size <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    entries = config.list_audit(
        action=action,
        target=target,
        since=parse_time(since, "since"),
        before_id=before_id,
        limit=size + 1,
    )
    more = len(entries) > size
    entries = entries[:size]
    return entries, (str(entries[-1].id) if more else None)


@router.get(
    "/audit",
    summary="The audit log of config changes, newest first",
    description="Every change to tenants, price overrides and API keys, whichever way it"
    " came (dashboard forms, this API, the CLI): who (`actor`: the key's id, label and role,"
    " or `cli`), when, the action, its target and the values before and after. A key's"
    " secret is never in it. Append-only: there is no way to change or remove an entry."
    " Admin keys only.",
)
def list_audit(
    request: Request,
    action: Annotated[AuditAction | None, Query(description="only this action")] = None,
    target: Annotated[
        str | None,
        Query(max_length=1024, description="only this target (tenant id, model or key id)"),
    ] = None,
    since: Annotated[
        str | None,
        Query(
            description=f"only changes at or after this time: RFC 3339 or epoch seconds,"
            f" between {TIME_BOUNDS}"
        ),
    ] = None,
    limit: Annotated[
        int | None, Query(ge=1, le=MAX_LIMIT, description=f"page size ({DEFAULT_LIMIT})")
    ] = None,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> Page[AuditEntryOut]:
    entries, next_cursor = audit_page(
        services_of(request).config,
        action=action,
        target=target,
        since=since,
        cursor=cursor,
        limit=limit,
    )
    return Page[AuditEntryOut](items=[_out(e) for e in entries], next_cursor=next_cursor)
