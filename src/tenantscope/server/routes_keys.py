"""The admin API for API keys: list, create (the token is shown once), revoke."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from tenantscope.errors import BadRequest, NotFound
from tenantscope.query.models import Timestamp
from tenantscope.server.body import read_body
from tenantscope.server.keys import Principal, issue_key
from tenantscope.server.services import services_of
from tenantscope.server.strict_params import reject_unknown_params
from tenantscope.storage.base import Actor, ApiKey

router = APIRouter(prefix="/api/keys", tags=["keys"], dependencies=[Depends(reject_unknown_params)])
MAX_BODY_BYTES = 16 * 1024


class KeyOut(BaseModel):
    key_id: str
    role: str
    name: str
    tenant_id: str | None
    created_at: Timestamp
    last_used_at: Timestamp
    revoked_at: Timestamp
    active: bool


class NewKey(BaseModel):
    role: Literal["admin", "ingest", "reader", "tenant"]
    name: Annotated[str, Field(max_length=200)] = ""
    tenant_id: Annotated[
        str | None,
        Field(
            max_length=1024,
            description="required for tenant keys; optional for ingest keys (then the key"
            " writes only this tenant's records)",
        ),
    ] = None


class CreatedKey(KeyOut):
    token: Annotated[str, Field(description="the key itself: shown this once, stored hashed")]


def api_actor(request: Request) -> Actor:
    """The key calling the JSON API, as the audit log records it (set by server/access.py
    before any route runs)."""
    principal: Principal = request.state.principal
    return principal.actor("api")


def _out(key: ApiKey) -> KeyOut:
    # every field by name from the stored key (``active`` is its property): the secret's
    # hash is not a field, so it cannot leak
    return KeyOut.model_validate(key, from_attributes=True)


@router.get("", summary="Every API key (never the secrets)")
def list_keys(request: Request) -> list[KeyOut]:
    return [_out(k) for k in services_of(request).config.list_api_keys()]


@router.post(
    "",
    summary="Create a key; its token is in this answer only",
    status_code=201,
    # the body is read in the handler, after the access check (a body parameter would be
    # parsed before it, for anyone): documented here instead
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": NewKey.model_json_schema()}},
        }
    },
)
async def create_key(request: Request) -> CreatedKey:
    raw = await read_body(request, MAX_BODY_BYTES)
    try:
        body = NewKey.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise BadRequest(f"invalid key request: {problems}") from None
    stored, token = await run_in_threadpool(
        partial(issue_key, actor=api_actor(request)),
        services_of(request).config,
        body.role,
        body.name,
        body.tenant_id or None,
    )
    return CreatedKey(**_out(stored).model_dump(), token=token)


@router.delete(
    "/{key_id}",
    summary="Revoke a key (at once on this server)",
    description="The last active admin key cannot be revoked (409): create another admin"
    " key first. A key may revoke itself otherwise.",
    responses={
        404: {"description": "no such active key"},
        409: {"description": "the last admin key"},
    },
)
def revoke_key(key_id: Annotated[str, Path(max_length=64)], request: Request) -> KeyOut:
    svc = services_of(request)
    if not svc.config.revoke_api_key(key_id, actor=api_actor(request)):
        raise NotFound(f"no active key {key_id!r}")
    svc.keys.forget(key_id)
    key = svc.config.get_api_key(key_id)
    assert key is not None
    return _out(key)
