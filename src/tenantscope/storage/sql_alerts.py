"""The alerts' state in a SQLAlchemy ConfigStore (SQLite by default, any SQLAlchemy URL):
one code path, reached as ``config.alerts``. Rule and contact point changes are audited
in their own transactions, like every other config change."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tenantscope import errors
from tenantscope.alerts.contacts import ContactPoint, public_settings
from tenantscope.storage.alert_state import (
    AlertInstance,
    AlertRule,
    AlertStore,
    HistoryEntry,
    OutboxItem,
)
from tenantscope.storage.base import SYSTEM, Actor
from tenantscope.storage.validation import utc

if TYPE_CHECKING:
    from tenantscope.storage.sqlite_config import SQLiteConfigStore

MAX_PAGE = 1000
metadata = sa.MetaData()

contact_points = sa.Table(
    "contact_points",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200)),
    sa.Column("kind", sa.String(16)),
    sa.Column("settings", sa.Text()),
    sa.Column("status", sa.String(16)),
    sa.Column("last_error", sa.Text()),
    sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)
alert_rules = sa.Table(
    "alert_rules",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200)),
    sa.Column("definition", sa.Text()),
    sa.Column("enabled", sa.Boolean()),
    sa.Column("silenced_until", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)
alert_instances = sa.Table(
    "alert_instances",
    metadata,
    sa.Column("rule_id", sa.Integer(), primary_key=True),
    sa.Column("key", sa.String(1024), primary_key=True),
    sa.Column("state", sa.String(16)),
    sa.Column("since", sa.DateTime(timezone=True)),
    sa.Column("pending_since", sa.DateTime(timezone=True)),
    sa.Column("last_breach_at", sa.DateTime(timezone=True)),
    sa.Column("value", sa.String(64)),
    sa.Column("requests", sa.Integer()),
    sa.Column("evaluated_at", sa.DateTime(timezone=True)),
    sa.Column("seq", sa.Integer()),
    sa.Column("silenced_until", sa.DateTime(timezone=True)),
)
alert_history = sa.Table(
    "alert_history",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("rule_id", sa.Integer()),
    sa.Column("key", sa.String(1024)),
    sa.Column("at", sa.DateTime(timezone=True)),
    sa.Column("from_state", sa.String(16)),
    sa.Column("to_state", sa.String(16)),
    sa.Column("value", sa.String(64)),
    sa.Column("note", sa.Text()),
)
alert_outbox = sa.Table(
    "alert_outbox",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("rule_id", sa.Integer()),
    sa.Column("key", sa.String(1024)),
    sa.Column("contact_id", sa.Integer()),
    sa.Column("payload", sa.Text()),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("attempts", sa.Integer()),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.Column("failed_at", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.Text()),
)
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(200)),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
)

# rule fields kept in its ``definition`` JSON (the others are columns of their own)
_DEFINITION = tuple(
    f.name
    for f in fields(AlertRule)
    if f.name not in ("id", "name", "enabled", "silenced_until", "created_at", "updated_at")
)
_DECIMAL_FIELDS = ("threshold", "warning")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _opt(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def _dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _dec_text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def rule_snapshot(rule: AlertRule | None) -> dict[str, Any] | None:
    """The rule as JSON (its audit entry, its API form's base)."""
    if rule is None:
        return None
    out = asdict(rule)
    for name in _DECIMAL_FIELDS:
        out[name] = _dec_text(out[name])
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


def _rule_from_row(row: Any) -> AlertRule:
    m = row._mapping
    data = json.loads(m["definition"])
    for name in _DECIMAL_FIELDS:
        data[name] = _dec(data.get(name))
    return AlertRule(
        id=m["id"],
        name=m["name"],
        enabled=bool(m["enabled"]),
        silenced_until=_opt(m["silenced_until"]),
        created_at=_opt(m["created_at"]),
        updated_at=_opt(m["updated_at"]),
        **{k: v for k, v in data.items() if k in _DEFINITION},
    )


def _rule_values(rule: AlertRule) -> dict[str, Any]:
    data = {name: getattr(rule, name) for name in _DEFINITION}
    for name in _DECIMAL_FIELDS:
        data[name] = _dec_text(data[name])
    return {
        "name": rule.name,
        "definition": json.dumps(data, sort_keys=True),
        "enabled": rule.enabled,
        "silenced_until": _opt(rule.silenced_until),
    }


def _contact_from_row(row: Any) -> ContactPoint:
    m = row._mapping
    return ContactPoint(
        id=m["id"],
        name=m["name"],
        kind=m["kind"],
        settings=json.loads(m["settings"]),
        status=m["status"],
        last_error=m["last_error"],
        last_attempt_at=_opt(m["last_attempt_at"]),
        created_at=_opt(m["created_at"]),
        updated_at=_opt(m["updated_at"]),
    )


def _instance_from_row(row: Any) -> AlertInstance:
    m = row._mapping
    return AlertInstance(
        rule_id=m["rule_id"],
        key=m["key"],
        state=m["state"],
        since=_opt(m["since"]),
        pending_since=_opt(m["pending_since"]),
        last_breach_at=_opt(m["last_breach_at"]),
        value=_dec(m["value"]),
        requests=m["requests"],
        evaluated_at=_opt(m["evaluated_at"]),
        seq=m["seq"],
        silenced_until=_opt(m["silenced_until"]),
    )


def _instance_values(i: AlertInstance) -> dict[str, Any]:
    return {
        "rule_id": i.rule_id,
        "key": i.key,
        "state": i.state,
        "since": _opt(i.since),
        "pending_since": _opt(i.pending_since),
        "last_breach_at": _opt(i.last_breach_at),
        "value": _dec_text(i.value),
        "requests": i.requests,
        "evaluated_at": _opt(i.evaluated_at),
        "seq": i.seq,
        "silenced_until": _opt(i.silenced_until),
    }


def _outbox_from_row(row: Any) -> OutboxItem:
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
        sent_at=_opt(m["sent_at"]),
        failed_at=_opt(m["failed_at"]),
        last_error=m["last_error"],
    )


def _measures(rule: AlertRule) -> dict[str, Any]:
    """What a rule's states are about: when it changes, old states mean nothing."""
    return {
        k: getattr(rule, k)
        for k in ("metric", "scope", "tenant_ids", "tier", "per_tenant", "filters", "window_s")
    }


class SqlAlertStore(AlertStore):
    def __init__(self, config: SQLiteConfigStore) -> None:
        self._config = config

    def _write(self) -> Any:
        return self._config._write()

    def _read(self) -> Any:
        return self._config._read()

    # -- rules ---------------------------------------------------------------------------
    def list_rules(self) -> list[AlertRule]:
        with self._read() as conn:
            rows = conn.execute(sa.select(alert_rules).order_by(alert_rules.c.id)).all()
        return [_rule_from_row(r) for r in rows]

    def get_rule(self, rule_id: int) -> AlertRule | None:
        with self._read() as conn:
            row = conn.execute(sa.select(alert_rules).where(alert_rules.c.id == rule_id)).first()
        return None if row is None else _rule_from_row(row)

    def _check_contacts(self, conn: Connection, ids: list[int]) -> None:
        if not ids:
            return
        found = {
            r[0]
            for r in conn.execute(
                sa.select(contact_points.c.id).where(contact_points.c.id.in_(ids))
            )
        }
        missing = [i for i in ids if i not in found]
        if missing:
            raise errors.InvalidFields(
                {"contact_ids": f"no contact point with id {', '.join(map(str, missing))}"}
            )

    def add_rule(self, rule: AlertRule, *, actor: Actor = SYSTEM) -> AlertRule:
        now = _now()
        with self._write() as conn:
            self._check_contacts(conn, rule.contact_ids)
            result = conn.execute(
                sa.insert(alert_rules).values(created_at=now, updated_at=now, **_rule_values(rule))
            )
            key = result.inserted_primary_key
            assert key is not None
            added = _rule_from_row(
                conn.execute(sa.select(alert_rules).where(alert_rules.c.id == key[0])).one()
            )
            self._config._audit(
                conn, actor, "alert_rule.create", str(added.id), None, rule_snapshot(added), now
            )
        return added

    def replace_rule(
        self, rule_id: int, rule: AlertRule, *, actor: Actor = SYSTEM
    ) -> AlertRule | None:
        now = _now()
        where = alert_rules.c.id == rule_id
        with self._write() as conn:
            old_row = conn.execute(sa.select(alert_rules).where(where).with_for_update()).first()
            if old_row is None:
                return None
            old = _rule_from_row(old_row)
            self._check_contacts(conn, rule.contact_ids)
            conn.execute(
                sa.update(alert_rules).where(where).values(updated_at=now, **_rule_values(rule))
            )
            new = _rule_from_row(conn.execute(sa.select(alert_rules).where(where)).one())
            if _measures(old) != _measures(new):
                conn.execute(sa.delete(alert_instances).where(alert_instances.c.rule_id == rule_id))
            self._config._audit(
                conn,
                actor,
                "alert_rule.update",
                str(rule_id),
                rule_snapshot(old),
                rule_snapshot(new),
                now,
            )
        return new

    def delete_rule(self, rule_id: int, *, actor: Actor = SYSTEM) -> bool:
        where = alert_rules.c.id == rule_id
        with self._write() as conn:
            old = conn.execute(sa.select(alert_rules).where(where).with_for_update()).first()
            if old is None:
                return False
            conn.execute(sa.delete(alert_rules).where(where))
            conn.execute(sa.delete(alert_instances).where(alert_instances.c.rule_id == rule_id))
            conn.execute(
                sa.delete(alert_outbox).where(
                    alert_outbox.c.rule_id == rule_id, alert_outbox.c.sent_at.is_(None)
                )
            )
            self._config._audit(
                conn,
                actor,
                "alert_rule.delete",
                str(rule_id),
                rule_snapshot(_rule_from_row(old)),
                None,
                _now(),
            )
        return True

    def silence(
        self, rule_id: int, key: str | None, until: datetime | None, *, actor: Actor = SYSTEM
    ) -> bool:
        now = _now()
        with self._write() as conn:
            row = conn.execute(sa.select(alert_rules).where(alert_rules.c.id == rule_id)).first()
            if row is None:
                return False
            if key is None:
                before = _opt(row.silenced_until)
                conn.execute(
                    sa.update(alert_rules)
                    .where(alert_rules.c.id == rule_id)
                    .values(silenced_until=_opt(until))
                )
            else:
                where = sa.and_(alert_instances.c.rule_id == rule_id, alert_instances.c.key == key)
                inst = conn.execute(sa.select(alert_instances).where(where)).first()
                if inst is None:
                    conn.execute(
                        sa.insert(alert_instances).values(
                            **_instance_values(AlertInstance(rule_id=rule_id, key=key, since=now))
                            | {"silenced_until": _opt(until)}
                        )
                    )
                    before = None
                else:
                    before = _opt(inst.silenced_until)
                    conn.execute(
                        sa.update(alert_instances).where(where).values(silenced_until=_opt(until))
                    )

            def text(v: datetime | None) -> str | None:
                return None if v is None else v.isoformat().replace("+00:00", "Z")

            target = str(rule_id) if key is None else f"{rule_id}/{key}"
            self._config._audit(
                conn,
                actor,
                "alert_rule.silence",
                target,
                {"silenced_until": text(before)},
                {"silenced_until": text(_opt(until))},
                now,
            )
        return True

    # -- contact points ------------------------------------------------------------------
    def list_contacts(self) -> list[ContactPoint]:
        with self._read() as conn:
            rows = conn.execute(sa.select(contact_points).order_by(contact_points.c.id)).all()
        return [_contact_from_row(r) for r in rows]

    def get_contact(self, contact_id: int) -> ContactPoint | None:
        with self._read() as conn:
            row = conn.execute(
                sa.select(contact_points).where(contact_points.c.id == contact_id)
            ).first()
        return None if row is None else _contact_from_row(row)

    def add_contact(self, contact: ContactPoint, *, actor: Actor = SYSTEM) -> ContactPoint:
        now = _now()
        with self._write() as conn:
            result = conn.execute(
                sa.insert(contact_points).values(
                    name=contact.name,
                    kind=contact.kind,
                    settings=json.dumps(contact.settings, sort_keys=True),
                    status="untested",
                    last_error="",
                    created_at=now,
                    updated_at=now,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            added = _contact_from_row(
                conn.execute(sa.select(contact_points).where(contact_points.c.id == key[0])).one()
            )
            self._config._audit(
                conn,
                actor,
                "contact_point.create",
                str(added.id),
                None,
                contact_snapshot(added),
                now,
            )
        return added

    def replace_contact(
        self, contact_id: int, contact: ContactPoint, *, actor: Actor = SYSTEM
    ) -> ContactPoint | None:
        now = _now()
        where = contact_points.c.id == contact_id
        with self._write() as conn:
            old = conn.execute(sa.select(contact_points).where(where).with_for_update()).first()
            if old is None:
                return None
            conn.execute(
                sa.update(contact_points)
                .where(where)
                .values(
                    name=contact.name,
                    kind=contact.kind,
                    settings=json.dumps(contact.settings, sort_keys=True),
                    status="untested",
                    last_error="",
                    updated_at=now,
                )
            )
            new = _contact_from_row(conn.execute(sa.select(contact_points).where(where)).one())
            self._config._audit(
                conn,
                actor,
                "contact_point.update",
                str(contact_id),
                contact_snapshot(_contact_from_row(old)),
                contact_snapshot(new),
                now,
            )
        return new

    def delete_contact(self, contact_id: int, *, actor: Actor = SYSTEM) -> bool:
        where = contact_points.c.id == contact_id
        with self._write() as conn:
            old = conn.execute(sa.select(contact_points).where(where).with_for_update()).first()
            if old is None:
                return False
            users = [
                r
                for r in (_rule_from_row(x) for x in conn.execute(sa.select(alert_rules)))
                if contact_id in r.contact_ids
            ]
            if users:
                names = ", ".join(f"{r.id} ({r.name})" for r in users)
                raise errors.Conflict(
                    f"contact point {contact_id} is used by alert rule {names}: remove it from"
                    " those rules first"
                )
            conn.execute(sa.delete(contact_points).where(where))
            conn.execute(
                sa.delete(alert_outbox).where(
                    alert_outbox.c.contact_id == contact_id, alert_outbox.c.sent_at.is_(None)
                )
            )
            self._config._audit(
                conn,
                actor,
                "contact_point.delete",
                str(contact_id),
                contact_snapshot(_contact_from_row(old)),
                None,
                _now(),
            )
        return True

    def set_contact_status(self, contact_id: int, status: str, error: str, at: datetime) -> None:
        with self._write() as conn:
            conn.execute(
                sa.update(contact_points)
                .where(contact_points.c.id == contact_id)
                .values(status=status, last_error=error[:2000], last_attempt_at=utc(at))
            )

    # -- evaluation ----------------------------------------------------------------------
    def instances(self, rule_id: int | None = None) -> list[AlertInstance]:
        query = sa.select(alert_instances).order_by(
            alert_instances.c.rule_id, alert_instances.c.key
        )
        if rule_id is not None:
            query = query.where(alert_instances.c.rule_id == rule_id)
        with self._read() as conn:
            return [_instance_from_row(r) for r in conn.execute(query)]

    def save_round(
        self,
        rule_id: int,
        instances: list[AlertInstance],
        history: list[HistoryEntry],
        outbox: list[OutboxItem],
        *,
        remove: list[str] = (),  # type: ignore[assignment]
        holder: str | None = None,
    ) -> bool:
        with self._write() as conn:
            if holder is not None:
                row = conn.execute(
                    sa.select(leases).where(leases.c.name == "alerts-evaluator")
                ).first()
                if row is None or row.holder != holder or utc(row.expires_at) <= _now():
                    return False
            if not conn.execute(
                sa.select(alert_rules.c.id).where(alert_rules.c.id == rule_id)
            ).first():
                return False  # deleted while it was evaluated
            mine = alert_instances.c.rule_id == rule_id
            if remove:
                conn.execute(
                    sa.delete(alert_instances).where(mine, alert_instances.c.key.in_(remove))
                )
            if instances:
                keys = [i.key for i in instances]
                for start in range(0, len(keys), 500):
                    conn.execute(
                        sa.delete(alert_instances).where(
                            mine, alert_instances.c.key.in_(keys[start : start + 500])
                        )
                    )
                conn.execute(sa.insert(alert_instances), [_instance_values(i) for i in instances])
            if history:
                conn.execute(
                    sa.insert(alert_history),
                    [
                        {
                            "rule_id": h.rule_id,
                            "key": h.key,
                            "at": utc(h.at),
                            "from_state": h.from_state,
                            "to_state": h.to_state,
                            "value": _dec_text(h.value),
                            "note": h.note,
                        }
                        for h in history
                    ],
                )
            if outbox:
                conn.execute(
                    sa.insert(alert_outbox),
                    [
                        {
                            "rule_id": o.rule_id,
                            "key": o.key,
                            "contact_id": o.contact_id,
                            "payload": json.dumps(o.payload, sort_keys=True),
                            "created_at": utc(o.created_at),
                            "next_attempt_at": utc(o.next_attempt_at),
                            "attempts": 0,
                            "last_error": "",
                        }
                        for o in outbox
                    ],
                )
        return True

    def history(
        self,
        *,
        rule_id: int | None = None,
        key: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[HistoryEntry]:
        query = sa.select(alert_history).order_by(alert_history.c.id.desc())
        if rule_id is not None:
            query = query.where(alert_history.c.rule_id == rule_id)
        if key is not None:
            query = query.where(alert_history.c.key == key)
        if before_id is not None:
            query = query.where(alert_history.c.id < before_id)
        query = query.limit(max(1, min(limit, MAX_PAGE)))
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            HistoryEntry(
                id=r.id,
                rule_id=r.rule_id,
                key=r.key,
                at=utc(r.at),
                from_state=r.from_state,
                to_state=r.to_state,
                value=_dec(r.value),
                note=r.note,
            )
            for r in rows
        ]

    def due_notifications(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        query = (
            sa.select(alert_outbox)
            .where(
                alert_outbox.c.sent_at.is_(None),
                alert_outbox.c.failed_at.is_(None),
                alert_outbox.c.next_attempt_at <= utc(now),
            )
            .order_by(alert_outbox.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [_outbox_from_row(r) for r in conn.execute(query)]

    def pending_notifications(self) -> int:
        with self._read() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(alert_outbox)
                    .where(alert_outbox.c.sent_at.is_(None), alert_outbox.c.failed_at.is_(None))
                ).scalar_one()
            )

    def notification_sent(self, item_id: int, at: datetime) -> None:
        with self._write() as conn:
            conn.execute(
                sa.update(alert_outbox)
                .where(alert_outbox.c.id == item_id)
                .values(sent_at=utc(at), attempts=alert_outbox.c.attempts + 1)
            )

    def notification_failed(
        self, item_id: int, error: str, next_attempt_at: datetime | None, at: datetime
    ) -> None:
        values: dict[str, Any] = {
            "attempts": alert_outbox.c.attempts + 1,
            "last_error": error[:2000],
        }
        if next_attempt_at is None:
            values["failed_at"] = utc(at)
        else:
            values["next_attempt_at"] = utc(next_attempt_at)
        with self._write() as conn:
            conn.execute(
                sa.update(alert_outbox).where(alert_outbox.c.id == item_id).values(**values)
            )

    def acquire_lease(self, name: str, holder: str, ttl_s: float, now: datetime) -> bool:
        until = utc(now) + timedelta(seconds=ttl_s)
        with self._write() as conn:
            row = conn.execute(
                sa.select(leases).where(leases.c.name == name).with_for_update()
            ).first()
            if row is None:
                conn.execute(sa.insert(leases).values(name=name, holder=holder, expires_at=until))
                return True
            if row.holder != holder and utc(row.expires_at) > utc(now):
                return False
            conn.execute(
                sa.update(leases)
                .where(leases.c.name == name)
                .values(holder=holder, expires_at=until)
            )
            return True

    def release_lease(self, name: str, holder: str) -> None:
        with self._write() as conn:
            conn.execute(sa.delete(leases).where(leases.c.name == name, leases.c.holder == holder))

    def lease_holder(self, name: str, now: datetime) -> str | None:
        with self._read() as conn:
            row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
        if row is None or utc(row.expires_at) <= utc(now):
            return None
        return str(row.holder)
