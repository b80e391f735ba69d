"""The alerts' state in a SQLAlchemy ConfigStore (SQLite by default, any SQLAlchemy URL):
one code path, reached as ``config.alerts``. Rule and contact point changes are audited
in their own transactions, like every other config change."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tenantscope import errors
from tenantscope.alerts.contacts import ContactPoint
from tenantscope.storage.alert_rows import (
    MAX_PAGE,
    alert_history,
    alert_instances,
    alert_outbox,
    alert_rules,
    contact_from_row,
    contact_points,
    contact_snapshot,
    dec,
    dec_text,
    instance_from_row,
    instance_values,
    leases,
    measures,
    opt,
    outbox_from_row,
    rule_from_row,
    rule_snapshot,
    rule_values,
    slo_from_row,
    slo_snapshot,
    slos,
    utcnow,
)
from tenantscope.storage.alert_state import (
    AlertInstance,
    AlertRule,
    AlertStore,
    HistoryEntry,
    OutboxItem,
    Slo,
)
from tenantscope.storage.base import SYSTEM, Actor
from tenantscope.storage.validation import utc

if TYPE_CHECKING:
    from tenantscope.storage.sqlite_config import SQLiteConfigStore


def check_contacts(conn: Connection, ids: list[int]) -> None:
    """Every id names a contact point (alert rules and budgets name them); else 422."""
    if not ids:
        return
    found = {
        r[0]
        for r in conn.execute(sa.select(contact_points.c.id).where(contact_points.c.id.in_(ids)))
    }
    missing = [i for i in ids if i not in found]
    if missing:
        raise errors.InvalidFields(
            {"contact_ids": f"no contact point with id {', '.join(map(str, missing))}"}
        )


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
        return [rule_from_row(r) for r in rows]

    def get_rule(self, rule_id: int) -> AlertRule | None:
        with self._read() as conn:
            row = conn.execute(sa.select(alert_rules).where(alert_rules.c.id == rule_id)).first()
        return None if row is None else rule_from_row(row)

    def add_rule(self, rule: AlertRule, *, actor: Actor = SYSTEM) -> AlertRule:
        with self._write() as conn:
            return self._insert_rule(conn, rule, actor, utcnow())

    def _insert_rule(
        self, conn: Connection, rule: AlertRule, actor: Actor, now: datetime
    ) -> AlertRule:
        check_contacts(conn, rule.contact_ids)
        if (
            rule.slo_id is not None
            and not conn.execute(sa.select(slos.c.id).where(slos.c.id == rule.slo_id)).first()
        ):
            raise errors.InvalidFields({"slo_id": f"no SLO with id {rule.slo_id}"})
        result = conn.execute(
            sa.insert(alert_rules).values(created_at=now, updated_at=now, **rule_values(rule))
        )
        key = result.inserted_primary_key
        assert key is not None
        added = rule_from_row(
            conn.execute(sa.select(alert_rules).where(alert_rules.c.id == key[0])).one()
        )
        self._config._audit(
            conn, actor, "alert_rule.create", str(added.id), None, rule_snapshot(added), now
        )
        return added

    def replace_rule(
        self, rule_id: int, rule: AlertRule, *, actor: Actor = SYSTEM
    ) -> AlertRule | None:
        now = utcnow()
        where = alert_rules.c.id == rule_id
        with self._write() as conn:
            old_row = conn.execute(sa.select(alert_rules).where(where).with_for_update()).first()
            if old_row is None:
                return None
            old = rule_from_row(old_row)
            check_contacts(conn, rule.contact_ids)
            conn.execute(
                sa.update(alert_rules).where(where).values(updated_at=now, **rule_values(rule))
            )
            new = rule_from_row(conn.execute(sa.select(alert_rules).where(where)).one())
            if measures(old) != measures(new):
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
            self._remove_rule(conn, rule_from_row(old), actor)
        return True

    def _remove_rule(self, conn: Connection, rule: AlertRule, actor: Actor) -> None:
        rule_id = rule.id
        conn.execute(sa.delete(alert_rules).where(alert_rules.c.id == rule_id))
        conn.execute(sa.delete(alert_instances).where(alert_instances.c.rule_id == rule_id))
        conn.execute(
            sa.delete(alert_outbox).where(
                alert_outbox.c.rule_id == rule_id, alert_outbox.c.sent_at.is_(None)
            )
        )
        self._config._audit(
            conn, actor, "alert_rule.delete", str(rule_id), rule_snapshot(rule), None, utcnow()
        )

    def silence(
        self, rule_id: int, key: str | None, until: datetime | None, *, actor: Actor = SYSTEM
    ) -> bool:
        now = utcnow()
        with self._write() as conn:
            row = conn.execute(sa.select(alert_rules).where(alert_rules.c.id == rule_id)).first()
            if row is None:
                return False
            if key is None:
                before = opt(row.silenced_until)
                conn.execute(
                    sa.update(alert_rules)
                    .where(alert_rules.c.id == rule_id)
                    .values(silenced_until=opt(until))
                )
            else:
                where = sa.and_(alert_instances.c.rule_id == rule_id, alert_instances.c.key == key)
                inst = conn.execute(sa.select(alert_instances).where(where)).first()
                if inst is None:
                    conn.execute(
                        sa.insert(alert_instances).values(
                            **instance_values(AlertInstance(rule_id=rule_id, key=key, since=now))
                            | {"silenced_until": opt(until)}
                        )
                    )
                    before = None
                else:
                    before = opt(inst.silenced_until)
                    conn.execute(
                        sa.update(alert_instances).where(where).values(silenced_until=opt(until))
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
                {"silenced_until": text(opt(until))},
                now,
            )
        return True

    # -- SLOs ----------------------------------------------------------------------------
    def list_slos(self) -> list[Slo]:
        with self._read() as conn:
            return [slo_from_row(r) for r in conn.execute(sa.select(slos).order_by(slos.c.id))]

    def get_slo(self, slo_id: int) -> Slo | None:
        with self._read() as conn:
            row = conn.execute(sa.select(slos).where(slos.c.id == slo_id)).first()
        return None if row is None else slo_from_row(row)

    def add_slo(
        self, slo: Slo, rules: Sequence[AlertRule] = (), *, actor: Actor = SYSTEM
    ) -> tuple[Slo, list[AlertRule]]:
        now = utcnow()
        definition = {k: v for k, v in (slo_snapshot(slo) or {}).items() if k not in ("id", "name")}
        added_rules: list[AlertRule] = []
        with self._write() as conn:
            result = conn.execute(
                sa.insert(slos).values(
                    name=slo.name, definition=json.dumps(definition, sort_keys=True), created_at=now
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            added = slo_from_row(conn.execute(sa.select(slos).where(slos.c.id == key[0])).one())
            self._config._audit(
                conn, actor, "slo.create", str(added.id), None, slo_snapshot(added), now
            )
            for rule in rules:
                rule.slo_id = added.id
                added_rules.append(self._insert_rule(conn, rule, actor, now))
        return added, added_rules

    def delete_slo(self, slo_id: int, *, actor: Actor = SYSTEM) -> bool:
        with self._write() as conn:
            row = conn.execute(sa.select(slos).where(slos.c.id == slo_id)).first()
            if row is None:
                return False
            for r in conn.execute(sa.select(alert_rules)).all():
                rule = rule_from_row(r)
                if rule.slo_id == slo_id:
                    assert rule.id is not None
                    self._remove_rule(conn, rule, actor)
            conn.execute(sa.delete(slos).where(slos.c.id == slo_id))
            self._config._audit(
                conn,
                actor,
                "slo.delete",
                str(slo_id),
                slo_snapshot(slo_from_row(row)),
                None,
                utcnow(),
            )
        return True

    # -- contact points ------------------------------------------------------------------
    def list_contacts(self) -> list[ContactPoint]:
        with self._read() as conn:
            rows = conn.execute(sa.select(contact_points).order_by(contact_points.c.id)).all()
        return [contact_from_row(r) for r in rows]

    def get_contact(self, contact_id: int) -> ContactPoint | None:
        with self._read() as conn:
            row = conn.execute(
                sa.select(contact_points).where(contact_points.c.id == contact_id)
            ).first()
        return None if row is None else contact_from_row(row)

    def add_contact(self, contact: ContactPoint, *, actor: Actor = SYSTEM) -> ContactPoint:
        now = utcnow()
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
            added = contact_from_row(
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
        now = utcnow()
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
            new = contact_from_row(conn.execute(sa.select(contact_points).where(where)).one())
            self._config._audit(
                conn,
                actor,
                "contact_point.update",
                str(contact_id),
                contact_snapshot(contact_from_row(old)),
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
                for r in (rule_from_row(x) for x in conn.execute(sa.select(alert_rules)))
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
                contact_snapshot(contact_from_row(old)),
                None,
                utcnow(),
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
            return [instance_from_row(r) for r in conn.execute(query)]

    def save_round(
        self,
        rule_id: int,
        instances: list[AlertInstance],
        history: list[HistoryEntry],
        outbox: list[OutboxItem],
        *,
        remove: list[str] = (),  # type: ignore[assignment]
        holder: str | None = None,
        at: datetime | None = None,
    ) -> bool:
        with self._write() as conn:
            if holder is not None:
                row = conn.execute(
                    sa.select(leases).where(leases.c.name == "alerts-evaluator")
                ).first()
                if (
                    row is None
                    or row.holder != holder
                    or utc(row.expires_at) <= utc(at or utcnow())
                ):
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
                conn.execute(sa.insert(alert_instances), [instance_values(i) for i in instances])
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
                            "value": dec_text(h.value),
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
                value=dec(r.value),
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
            return [outbox_from_row(r) for r in conn.execute(query)]

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
