"""The limits' tables as SQLAlchemy Core sees them, and how their rows become values
(and values rows): shared by the SQL limit store (``storage/sql_limits.py``). The tables
are created by migration 0005."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from tenantscope.storage.alert_rows import dec, dec_text, opt
from tenantscope.storage.limit_state import Approval, LimitDef, Notice
from tenantscope.storage.validation import utc

metadata = sa.MetaData()

limits = sa.Table(
    "limits",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    # JSON text: every field but id, name, enabled and times (limits.definitions)
    sa.Column("definition", sa.Text(), nullable=False),
    sa.Column("enabled", sa.Boolean(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

limit_approvals = sa.Table(
    "limit_approvals",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("limit_ref", sa.String(64), nullable=False),
    sa.Column("tenant_id", sa.String(256), nullable=False),
    sa.Column("subject", sa.String(256), nullable=False, server_default=""),
    sa.Column("amount_usd", sa.String(64), nullable=True),
    sa.Column("requests_per_minute", sa.Integer(), nullable=True),
    sa.Column("tokens_per_minute", sa.Integer(), nullable=True),
    sa.Column("reason", sa.Text(), nullable=False, server_default=""),
    sa.Column("granted_by", sa.String(256), nullable=False, server_default=""),
    sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

limit_notices = sa.Table(
    "limit_notices",
    metadata,
    sa.Column("limit_ref", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(256), primary_key=True),
    sa.Column("subject", sa.String(256), primary_key=True),
    sa.Column("period_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("threshold", sa.Integer(), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("spend_usd", sa.String(64), nullable=False),
    sa.Column("cap_usd", sa.String(64), nullable=False),
)

# the definition's JSON holds these; Decimals as text
DEFINITION = (
    "kind",
    "per",
    "subject",
    "tenant_id",
    "tier",
    "requests_per_minute",
    "tokens_per_minute",
    "amount_usd",
    "basis",
    "timezone",
    "anchor_day",
    "thresholds",
    "mode",
    "contact_ids",
    "description",
)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else utc(value).isoformat().replace("+00:00", "Z")


def limit_snapshot(limit: LimitDef | None) -> dict[str, Any] | None:
    """The limit as JSON (its audit entry, its API form's base)."""
    if limit is None:
        return None
    out = asdict(limit)
    out["amount_usd"] = dec_text(limit.amount_usd)
    for name in ("created_at", "updated_at"):
        out[name] = _iso(out[name])
    return out


def limit_values(limit: LimitDef) -> dict[str, Any]:
    data = {name: getattr(limit, name) for name in DEFINITION}
    data["amount_usd"] = dec_text(limit.amount_usd)
    return {
        "name": limit.name,
        "definition": json.dumps(data, sort_keys=True),
        "enabled": limit.enabled,
    }


def limit_from_row(row: Any) -> LimitDef:
    m = row._mapping
    data = json.loads(m["definition"])
    data["amount_usd"] = dec(data.get("amount_usd"))
    return LimitDef(
        id=m["id"],
        name=m["name"],
        enabled=bool(m["enabled"]),
        created_at=opt(m["created_at"]),
        updated_at=opt(m["updated_at"]),
        **{k: v for k, v in data.items() if k in DEFINITION},
    )


def approval_snapshot(a: Approval) -> dict[str, Any]:
    out = asdict(a)
    out["amount_usd"] = dec_text(a.amount_usd)
    for name in ("expires_at", "starts_at", "revoked_at", "created_at"):
        out[name] = _iso(out[name])
    return out


def approval_values(a: Approval) -> dict[str, Any]:
    return {
        "limit_ref": a.limit_ref,
        "tenant_id": a.tenant_id,
        "subject": a.subject,
        "amount_usd": dec_text(a.amount_usd),
        "requests_per_minute": a.requests_per_minute,
        "tokens_per_minute": a.tokens_per_minute,
        "reason": a.reason,
        "granted_by": a.granted_by,
        "starts_at": opt(a.starts_at),
        "expires_at": utc(a.expires_at),
        "revoked_at": opt(a.revoked_at),
    }


def approval_from_row(row: Any) -> Approval:
    m = row._mapping
    return Approval(
        id=m["id"],
        limit_ref=m["limit_ref"],
        tenant_id=m["tenant_id"],
        subject=m["subject"],
        amount_usd=dec(m["amount_usd"]),
        requests_per_minute=m["requests_per_minute"],
        tokens_per_minute=m["tokens_per_minute"],
        reason=m["reason"],
        granted_by=m["granted_by"],
        starts_at=opt(m["starts_at"]),
        expires_at=utc(m["expires_at"]),
        revoked_at=opt(m["revoked_at"]),
        created_at=opt(m["created_at"]),
    )


def notice_from_row(row: Any) -> Notice:
    m = row._mapping
    return Notice(
        limit_ref=m["limit_ref"],
        tenant_id=m["tenant_id"],
        subject=m["subject"],
        period_start=utc(m["period_start"]),
        threshold=m["threshold"],
        at=utc(m["at"]),
        spend_usd=Decimal(m["spend_usd"]),
        cap_usd=Decimal(m["cap_usd"]),
    )
