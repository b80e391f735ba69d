"""The alerts' tables as SQLAlchemy Core sees them, and how their rows become values (and
values rows): shared by the SQL alert store (``storage/sql_alerts.py``). The tables are
created by migration 0004."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from tenantscope.alerts.contacts import ContactPoint, public_settings
from tenantscope.storage.alert_state import AlertInstance, AlertRule, OutboxItem, Slo
from tenantscope.storage.validation import utc

MAX_PAGE = 1000
metadata = sa.MetaData()

contact_points = sa.Table(
    "contact_points",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    # JSON text, secrets included (never returned by the API)
    sa.Column("settings", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="untested"),
    sa.Column("last_error", sa.Text(), nullable=False, server_default=""),
    sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

alert_rules = sa.Table(
    "alert_rules",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    # JSON text: every field of the rule but its id and times (alerts.rules)
    sa.Column("definition", sa.Text(), nullable=False),
    sa.Column("enabled", sa.Boolean(), nullable=False),
    sa.Column("silenced_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

slos = sa.Table(
    "slos",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    # JSON text: indicator, objective, target, period, tenants (alerts.slo)
    sa.Column("definition", sa.Text(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

alert_instances = sa.Table(
    "alert_instances",
    metadata,
    sa.Column("rule_id", sa.Integer(), nullable=False),
    sa.Column("key", sa.String(1024), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("since", sa.DateTime(timezone=True), nullable=True),
    sa.Column("pending_since", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_breach_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("value", sa.String(64), nullable=True),
    sa.Column("requests", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("seq", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("silenced_until", sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint("rule_id", "key"),
)

alert_history = sa.Table(
    "alert_history",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("rule_id", sa.Integer(), nullable=False),
    sa.Column("key", sa.String(1024), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("from_state", sa.String(16), nullable=False),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("value", sa.String(64), nullable=True),
    sa.Column("note", sa.Text(), nullable=False, server_default=""),
    sa.Index("ix_alert_history_rule", "rule_id", "key", "id"),
)

alert_outbox = sa.Table(
    "alert_outbox",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("rule_id", sa.Integer(), nullable=False),
    sa.Column("key", sa.String(1024), nullable=False),
    sa.Column("contact_id", sa.Integer(), nullable=False),
    sa.Column("payload", sa.Text(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=False, server_default=""),
    sa.Index("ix_alert_outbox_due", "sent_at", "failed_at", "next_attempt_at"),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

# rule fields kept in its ``definition`` JSON (the others are columns of their own)
DEFINITION = tuple(
    f.name
    for f in fields(AlertRule)
    if f.name not in ("id", "name", "enabled", "silenced_until", "created_at", "updated_at")
)
DECIMAL_FIELDS = ("threshold", "warning")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def opt(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def dec_text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def rule_snapshot(rule: AlertRule | None) -> dict[str, Any] | None:
    """The rule as JSON (its audit entry, its API form's base)."""
    if rule is None:
        return None
    out = asdict(rule)
    for name in DECIMAL_FIELDS:
        out[name] = dec_text(out[name])
    for name in ("silenced_until", "created_at", "updated_at"):
        value = out[name]
        out[name] = None if value is None else utc(value).isoformat().replace("+00:00", "Z")
    return out


def contact_snapshot(contact: ContactPoint | None) -> dict[str, Any] | None:
    if contact is None:
        return None
    # secrets never reach the audit log
    return {
        "id": contact.id,
        "name": contact.name,
        "kind": contact.kind,
        "settings": public_settings(contact),
    }


def rule_from_row(row: Any) -> AlertRule:
    m = row._mapping
    data = json.loads(m["definition"])
    for name in DECIMAL_FIELDS:
        data[name] = dec(data.get(name))
    return AlertRule(
        id=m["id"],
        name=m["name"],
        enabled=bool(m["enabled"]),
        silenced_until=opt(m["silenced_until"]),
        created_at=opt(m["created_at"]),
        updated_at=opt(m["updated_at"]),
        **{k: v for k, v in data.items() if k in DEFINITION},
    )


def rule_values(rule: AlertRule) -> dict[str, Any]:
    data = {name: getattr(rule, name) for name in DEFINITION}
    for name in DECIMAL_FIELDS:
        data[name] = dec_text(data[name])
    return {
        "name": rule.name,
        "definition": json.dumps(data, sort_keys=True),
        "enabled": rule.enabled,
        "silenced_until": opt(rule.silenced_until),
    }


def slo_snapshot(slo: Slo | None) -> dict[str, Any] | None:
    if slo is None:
        return None
    return {
        "id": slo.id,
        "name": slo.name,
        "indicator": slo.indicator,
        "objective": format(slo.objective, "f"),
        "target_ms": slo.target_ms,
        "period_days": slo.period_days,
        "tenant_ids": slo.tenant_ids,
        "tier": slo.tier,
    }


def slo_from_row(row: Any) -> Slo:
    m = row._mapping
    data = json.loads(m["definition"])
    return Slo(
        id=m["id"],
        name=m["name"],
        indicator=data["indicator"],
        objective=Decimal(data["objective"]),
        target_ms=data.get("target_ms"),
        period_days=data.get("period_days", 30),
        tenant_ids=data.get("tenant_ids", []),
        tier=data.get("tier", ""),
        created_at=opt(m["created_at"]),
    )


def contact_from_row(row: Any) -> ContactPoint:
    m = row._mapping
    return ContactPoint(
        id=m["id"],
        name=m["name"],
        kind=m["kind"],
        settings=json.loads(m["settings"]),
        status=m["status"],
        last_error=m["last_error"],
        last_attempt_at=opt(m["last_attempt_at"]),
        created_at=opt(m["created_at"]),
        updated_at=opt(m["updated_at"]),
    )


def instance_from_row(row: Any) -> AlertInstance:
    m = row._mapping
    return AlertInstance(
        rule_id=m["rule_id"],
        key=m["key"],
        state=m["state"],
        since=opt(m["since"]),
        pending_since=opt(m["pending_since"]),
        last_breach_at=opt(m["last_breach_at"]),
        value=dec(m["value"]),
        requests=m["requests"],
        evaluated_at=opt(m["evaluated_at"]),
        seq=m["seq"],
        silenced_until=opt(m["silenced_until"]),
    )


def instance_values(i: AlertInstance) -> dict[str, Any]:
    return {
        "rule_id": i.rule_id,
        "key": i.key,
        "state": i.state,
        "since": opt(i.since),
        "pending_since": opt(i.pending_since),
        "last_breach_at": opt(i.last_breach_at),
        "value": dec_text(i.value),
        "requests": i.requests,
        "evaluated_at": opt(i.evaluated_at),
        "seq": i.seq,
        "silenced_until": opt(i.silenced_until),
    }


def outbox_from_row(row: Any) -> OutboxItem:
    m = row._mapping
    return OutboxItem(
        id=m["id"],
        rule_id=m["rule_id"],
        key=m["key"],
        contact_id=m["contact_id"],
        payload=json.loads(m["payload"]),
        created_at=utc(m["created_at"]),
        next_attempt_at=utc(m["next_attempt_at"]),
        attempts=m["attempts"],
        sent_at=opt(m["sent_at"]),
        failed_at=opt(m["failed_at"]),
        last_error=m["last_error"],
    )


def measures(rule: AlertRule) -> dict[str, Any]:
    """What a rule's states are about: when it changes, old states mean nothing."""
    return {
        k: getattr(rule, k)
        for k in ("metric", "scope", "tenant_ids", "tier", "per_tenant", "filters", "window_s")
    }
