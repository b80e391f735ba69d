"""The limits' configuration in a SQLAlchemy ConfigStore (SQLite by default, any
SQLAlchemy URL), reached as ``config.limits``. Every change is audited in its own
transaction, like every other config change."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tenantscope.alerts.evaluator import notification_payload
from tenantscope.alerts.notifications import Notification
from tenantscope.storage.alert_rows import alert_outbox, dec_text, utcnow
from tenantscope.storage.base import SYSTEM, Actor
from tenantscope.storage.limit_rows import (
    approval_from_row,
    approval_snapshot,
    approval_values,
    limit_approvals,
    limit_from_row,
    limit_notices,
    limit_snapshot,
    limit_values,
    limits,
    notice_from_row,
)
from tenantscope.storage.limit_state import Approval, LimitDef, LimitStore, Notice
from tenantscope.storage.sql_alerts import check_contacts
from tenantscope.storage.validation import utc

if TYPE_CHECKING:
    from tenantscope.storage.sqlite_config import SQLiteConfigStore

# a notice's notifications are tried again on this schedule by the alerts' delivery
_FIRST_ATTEMPT = timedelta(0)


class SqlLimitStore(LimitStore):
    def __init__(self, config: SQLiteConfigStore) -> None:
        self._config = config
        # bumped on every change: the limiter re-reads definitions only when it moved
        self.version = 0

    def _write(self) -> Any:
        return self._config._write()

    def _read(self) -> Any:
        return self._config._read()

    def _changed(self) -> None:
        self.version += 1

    # -- definitions -------------------------------------------------------------------
    def list_limits(self) -> list[LimitDef]:
        with self._read() as conn:
            rows = conn.execute(sa.select(limits).order_by(limits.c.id)).all()
        return [limit_from_row(r) for r in rows]

    def get_limit(self, limit_id: int) -> LimitDef | None:
        with self._read() as conn:
            row = conn.execute(sa.select(limits).where(limits.c.id == limit_id)).first()
        return None if row is None else limit_from_row(row)

    def add_limit(self, limit: LimitDef, *, actor: Actor = SYSTEM) -> LimitDef:
        now = utcnow()
        with self._write() as conn:
            check_contacts(conn, limit.contact_ids)
            result = conn.execute(
                sa.insert(limits).values(created_at=now, updated_at=now, **limit_values(limit))
            )
            key = result.inserted_primary_key
            assert key is not None
            added = limit_from_row(
                conn.execute(sa.select(limits).where(limits.c.id == key[0])).one()
            )
            self._config._audit(
                conn, actor, "limit.create", added.ref, None, limit_snapshot(added), now
            )
        self._changed()
        return added

    def replace_limit(
        self, limit_id: int, limit: LimitDef, *, actor: Actor = SYSTEM
    ) -> LimitDef | None:
        now = utcnow()
        where = limits.c.id == limit_id
        with self._write() as conn:
            old_row = conn.execute(sa.select(limits).where(where).with_for_update()).first()
            if old_row is None:
                return None
            old = limit_from_row(old_row)
            check_contacts(conn, limit.contact_ids)
            conn.execute(
                sa.update(limits).where(where).values(updated_at=now, **limit_values(limit))
            )
            new = limit_from_row(conn.execute(sa.select(limits).where(where)).one())
            self._config._audit(
                conn, actor, "limit.update", new.ref, limit_snapshot(old), limit_snapshot(new), now
            )
        self._changed()
        return new

    def delete_limit(self, limit_id: int, *, actor: Actor = SYSTEM) -> bool:
        now = utcnow()
        where = limits.c.id == limit_id
        with self._write() as conn:
            old_row = conn.execute(sa.select(limits).where(where).with_for_update()).first()
            if old_row is None:
                return False
            old = limit_from_row(old_row)
            conn.execute(sa.delete(limits).where(where))
            conn.execute(
                sa.update(limit_approvals)
                .where(
                    limit_approvals.c.limit_ref == old.ref,
                    limit_approvals.c.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
            self._config._audit(
                conn, actor, "limit.delete", old.ref, limit_snapshot(old), None, now
            )
        self._changed()
        return True

    # -- approvals ---------------------------------------------------------------------
    def list_approvals(self, *, active_at: datetime | None = None) -> list[Approval]:
        q = sa.select(limit_approvals).order_by(limit_approvals.c.id)
        if active_at is not None:
            q = q.where(
                limit_approvals.c.revoked_at.is_(None),
                limit_approvals.c.expires_at > utc(active_at),
            )
        with self._read() as conn:
            rows = conn.execute(q).all()
        out = [approval_from_row(r) for r in rows]
        return out if active_at is None else [a for a in out if a.active(active_at)]

    def add_approval(self, approval: Approval, *, actor: Actor = SYSTEM) -> Approval:
        now = utcnow()
        with self._write() as conn:
            result = conn.execute(
                sa.insert(limit_approvals).values(created_at=now, **approval_values(approval))
            )
            key = result.inserted_primary_key
            assert key is not None
            added = approval_from_row(
                conn.execute(sa.select(limit_approvals).where(limit_approvals.c.id == key[0])).one()
            )
            self._config._audit(
                conn,
                actor,
                "limit_approval.create",
                f"{added.limit_ref} {added.tenant_id}",
                None,
                approval_snapshot(added),
                now,
            )
        self._changed()
        return added

    def revoke_approval(self, approval_id: int, at: datetime, *, actor: Actor = SYSTEM) -> bool:
        where = limit_approvals.c.id == approval_id
        with self._write() as conn:
            row = conn.execute(sa.select(limit_approvals).where(where).with_for_update()).first()
            if row is None:
                return False
            old = approval_from_row(row)
            if old.revoked_at is not None:
                return True
            conn.execute(sa.update(limit_approvals).where(where).values(revoked_at=utc(at)))
            new = approval_from_row(conn.execute(sa.select(limit_approvals).where(where)).one())
            self._config._audit(
                conn,
                actor,
                "limit_approval.revoke",
                f"{old.limit_ref} {old.tenant_id}",
                approval_snapshot(old),
                approval_snapshot(new),
                utc(at),
            )
        self._changed()
        return True

    # -- notices -----------------------------------------------------------------------
    def add_notice(self, notice: Notice, notifications: list[tuple[int, Notification]]) -> bool:
        key = {
            "limit_ref": notice.limit_ref,
            "tenant_id": notice.tenant_id,
            "subject": notice.subject,
            "period_start": utc(notice.period_start),
            "threshold": notice.threshold,
        }
        try:
            return self._insert_notice(notice, key, notifications)
        except sa.exc.IntegrityError:  # another process noticed it first
            return False

    def _insert_notice(
        self,
        notice: Notice,
        key: dict[str, Any],
        notifications: list[tuple[int, Notification]],
    ) -> bool:
        with self._write() as conn:
            where = sa.and_(*(limit_notices.c[k] == v for k, v in key.items()))
            if conn.execute(sa.select(limit_notices.c.threshold).where(where)).first():
                return False
            conn.execute(
                sa.insert(limit_notices).values(
                    at=utc(notice.at),
                    spend_usd=dec_text(notice.spend_usd),
                    cap_usd=dec_text(notice.cap_usd),
                    **key,
                )
            )
            if notifications:
                conn.execute(
                    sa.insert(alert_outbox),
                    [
                        {
                            "rule_id": 0,
                            "key": f"limit:{notice.limit_ref}:{notice.tenant_id}",
                            "contact_id": contact_id,
                            "payload": json.dumps(notification_payload(n), sort_keys=True),
                            "created_at": utc(notice.at),
                            "next_attempt_at": utc(notice.at) + _FIRST_ATTEMPT,
                            "attempts": 0,
                            "last_error": "",
                        }
                        for contact_id, n in notifications
                    ],
                )
        return True

    def notices(
        self, *, since: datetime | None = None, tenant_id: str | None = None
    ) -> list[Notice]:
        q = sa.select(limit_notices).order_by(limit_notices.c.at)
        if since is not None:
            q = q.where(limit_notices.c.period_start >= utc(since))
        if tenant_id is not None:
            q = q.where(limit_notices.c.tenant_id == tenant_id)
        with self._read() as conn:
            rows = conn.execute(q).all()
        return [notice_from_row(r) for r in rows]
