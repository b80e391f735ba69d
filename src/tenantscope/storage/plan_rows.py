"""The plans' tables as SQLAlchemy Core sees them, and how their rows become values (and
values rows): shared by the SQL plan store (``storage/sql_plans.py``). The tables are
created by migration 0006."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from tenantscope.storage.alert_rows import dec, dec_text, opt
from tenantscope.storage.plan_state import Plan, PlanAssignment
from tenantscope.storage.validation import MAX_LABEL, MAX_TENANT_ID, utc

metadata = sa.MetaData()

plans = sa.Table(
    "plans",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    # unique: assignments, the CLI and invoices name a plan by it
    sa.Column("name", sa.String(MAX_LABEL), nullable=False, unique=True),
    # JSON text: every field but id, name and times (billing.plans.check_plan)
    sa.Column("definition", sa.Text(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

plan_assignments = sa.Table(
    "plan_assignments",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(MAX_TENANT_ID), nullable=False),
    # no ON DELETE: a plan with assignments is not deleted (the store says which tenants)
    sa.Column("plan_id", sa.Integer(), sa.ForeignKey("plans.id"), nullable=False),
    sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # one plan per tenant per moment: assigning the same moment again replaces it
    sa.UniqueConstraint("tenant_id", "effective_from", name="uq_plan_assignments_tenant_from"),
    sa.Index("ix_plan_assignments_plan", "plan_id"),
)

# the definition's JSON holds these; Decimals as text
DEFINITION = (
    "description",
    "base_fee_usd",
    "minimum_usd",
    "included_usd",
    "included_units",
    "included_action",
    "overage",
    "margin_pct",
    "unit_prices",
    "timezone",
    "anchor_day",
)
_MONEY = ("base_fee_usd", "minimum_usd", "included_usd", "margin_pct")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else utc(value).isoformat().replace("+00:00", "Z")


def _definition(plan: Plan) -> dict[str, Any]:
    """The plan's fields as JSON values: decimals as exact strings."""
    out: dict[str, Any] = {name: getattr(plan, name) for name in DEFINITION}
    for name in _MONEY:
        out[name] = dec_text(out[name])
    out["unit_prices"] = {k: format(v, "f") for k, v in sorted(plan.unit_prices.items())}
    return out


def plan_snapshot(plan: Plan | None) -> dict[str, Any] | None:
    """The plan as JSON (its audit entry, its API answer)."""
    if plan is None:
        return None
    return {
        "id": plan.id,
        "ref": plan.ref,
        "name": plan.name,
        **_definition(plan),
        "created_at": _iso(plan.created_at),
        "updated_at": _iso(plan.updated_at),
    }


def plan_values(plan: Plan) -> dict[str, Any]:
    return {"name": plan.name, "definition": json.dumps(_definition(plan), sort_keys=True)}


def plan_from_row(row: Any) -> Plan:
    m = row._mapping
    data = json.loads(m["definition"])
    for name in _MONEY:
        data[name] = dec(data.get(name))
    data["base_fee_usd"] = data["base_fee_usd"] or Decimal(0)
    data["unit_prices"] = {k: Decimal(v) for k, v in (data.get("unit_prices") or {}).items()}
    return Plan(
        id=m["id"],
        name=m["name"],
        created_at=opt(m["created_at"]),
        updated_at=opt(m["updated_at"]),
        **{k: v for k, v in data.items() if k in DEFINITION},
    )


def assignment_snapshot(a: PlanAssignment) -> dict[str, Any]:
    return {
        "id": a.id,
        "tenant_id": a.tenant_id,
        "plan_id": a.plan_id,
        "effective_from": _iso(a.effective_from),
        "created_at": _iso(a.created_at),
    }


def assignment_from_row(row: Any) -> PlanAssignment:
    m = row._mapping
    return PlanAssignment(
        id=m["id"],
        tenant_id=m["tenant_id"],
        plan_id=m["plan_id"],
        effective_from=utc(m["effective_from"]),
        created_at=opt(m["created_at"]),
    )
