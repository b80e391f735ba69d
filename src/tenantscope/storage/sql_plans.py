"""Plans and their assignments in a SQLAlchemy ConfigStore (SQLite by default, any
SQLAlchemy URL), reached as ``config.plans``. Every change is audited in its own
transaction, like every other config change."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tenantscope import errors
from tenantscope.storage.alert_rows import utcnow
from tenantscope.storage.base import SYSTEM, Actor
from tenantscope.storage.plan_rows import (
    assignment_from_row,
    assignment_snapshot,
    plan_assignments,
    plan_from_row,
    plan_snapshot,
    plan_values,
    plans,
)
from tenantscope.storage.plan_state import Plan, PlanAssignment, PlanStore
from tenantscope.storage.validation import utc

if TYPE_CHECKING:
    from tenantscope.storage.sqlite_config import SQLiteConfigStore

# tenants named in a refused deletion's message; the rest are counted
_NAMED_TENANTS = 20


def _taken(name: str) -> errors.InvalidFields:
    return errors.InvalidFields({"name": f"a plan is already called {name!r}: names are unique"})


class SqlPlanStore(PlanStore):
    def __init__(self, config: SQLiteConfigStore) -> None:
        self._config = config

    def _write(self) -> Any:
        return self._config._write()

    def _read(self) -> Any:
        return self._config._read()

    # -- plans -------------------------------------------------------------------------
    def list_plans(self) -> list[Plan]:
        with self._read() as conn:
            rows = conn.execute(sa.select(plans).order_by(plans.c.id)).all()
        return [plan_from_row(r) for r in rows]

    def get_plan(self, plan_id: int) -> Plan | None:
        with self._read() as conn:
            row = conn.execute(sa.select(plans).where(plans.c.id == plan_id)).first()
        return None if row is None else plan_from_row(row)

    @staticmethod
    def _check_name(conn: Connection, name: str, plan_id: int | None) -> None:
        # case aside: "Starter" and "starter" would be two plans nobody can tell apart
        q = sa.select(plans.c.id).where(sa.func.lower(plans.c.name) == name.lower())
        if plan_id is not None:
            q = q.where(plans.c.id != plan_id)
        other = conn.execute(q).first()
        if other is not None:
            raise errors.InvalidFields(
                {"name": f"plan P{other[0]} is already called {name!r}: names are unique"}
            )

    def add_plan(self, plan: Plan, *, actor: Actor = SYSTEM) -> Plan:
        now = utcnow()
        try:
            with self._write() as conn:
                self._check_name(conn, plan.name, None)
                result = conn.execute(
                    sa.insert(plans).values(created_at=now, updated_at=now, **plan_values(plan))
                )
                key = result.inserted_primary_key
                assert key is not None
                added = plan_from_row(
                    conn.execute(sa.select(plans).where(plans.c.id == key[0])).one()
                )
                self._config._audit(
                    conn, actor, "plan.create", added.ref, None, plan_snapshot(added), now
                )
        except sa.exc.IntegrityError:  # the same name, written by another process meanwhile
            raise errors.InvalidFields(
                {"name": f"a plan is already called {plan.name!r}"}
            ) from None
        return added

    def replace_plan(self, plan_id: int, plan: Plan, *, actor: Actor = SYSTEM) -> Plan | None:
        now = utcnow()
        where = plans.c.id == plan_id
        try:
            with self._write() as conn:
                old_row = conn.execute(sa.select(plans).where(where).with_for_update()).first()
                if old_row is None:
                    return None
                self._check_name(conn, plan.name, plan_id)
                conn.execute(
                    sa.update(plans).where(where).values(updated_at=now, **plan_values(plan))
                )
                new = plan_from_row(conn.execute(sa.select(plans).where(where)).one())
                self._config._audit(
                    conn,
                    actor,
                    "plan.update",
                    new.ref,
                    plan_snapshot(plan_from_row(old_row)),
                    plan_snapshot(new),
                    now,
                )
        except sa.exc.IntegrityError:
            raise errors.InvalidFields(
                {"name": f"a plan is already called {plan.name!r}"}
            ) from None
        return new

    def delete_plan(self, plan_id: int, *, actor: Actor = SYSTEM) -> bool:
        now = utcnow()
        where = plans.c.id == plan_id
        with self._write() as conn:
            old_row = conn.execute(sa.select(plans).where(where).with_for_update()).first()
            if old_row is None:
                return False
            old = plan_from_row(old_row)
            tenants = [
                r[0]
                for r in conn.execute(
                    sa.select(plan_assignments.c.tenant_id)
                    .where(plan_assignments.c.plan_id == plan_id)
                    .distinct()
                    .order_by(plan_assignments.c.tenant_id)
                )
            ]
            if tenants:
                named = ", ".join(tenants[:_NAMED_TENANTS])
                more = len(tenants) - _NAMED_TENANTS
                raise errors.Conflict(
                    f"plan {old.ref} ({old.name}) is assigned to {named}"
                    + (f" and {more} more tenants" if more > 0 else "")
                    + ": remove those assignments first (their history is what invoices read)",
                    details={"tenants": tenants},
                )
            conn.execute(sa.delete(plans).where(where))
            self._config._audit(conn, actor, "plan.delete", old.ref, plan_snapshot(old), None, now)
        return True

    # -- assignments -------------------------------------------------------------------
    def list_assignments(self, tenant_id: str | None = None) -> list[PlanAssignment]:
        q = sa.select(plan_assignments).order_by(
            plan_assignments.c.tenant_id, plan_assignments.c.effective_from
        )
        if tenant_id is not None:
            q = q.where(plan_assignments.c.tenant_id == tenant_id)
        with self._read() as conn:
            rows = conn.execute(q).all()
        return [assignment_from_row(r) for r in rows]

    def assign(self, assignment: PlanAssignment, *, actor: Actor = SYSTEM) -> PlanAssignment:
        now = utcnow()
        at = utc(assignment.effective_from)
        same = sa.and_(
            plan_assignments.c.tenant_id == assignment.tenant_id,
            plan_assignments.c.effective_from == at,
        )
        with self._write() as conn:
            found = sa.select(plans.c.id).where(plans.c.id == assignment.plan_id)
            if conn.execute(found).first() is None:
                raise errors.InvalidFields({"plan_id": f"no plan {assignment.plan_id}"})
            old_row = conn.execute(sa.select(plan_assignments).where(same)).first()
            values = {"plan_id": assignment.plan_id, "created_at": now}
            if old_row is None:
                conn.execute(
                    sa.insert(plan_assignments).values(
                        tenant_id=assignment.tenant_id, effective_from=at, **values
                    )
                )
            else:
                conn.execute(sa.update(plan_assignments).where(same).values(**values))
            new = assignment_from_row(conn.execute(sa.select(plan_assignments).where(same)).one())
            before = None if old_row is None else assignment_snapshot(assignment_from_row(old_row))
            self._config._audit(
                conn,
                actor,
                "plan.assign",
                new.tenant_id,
                before,
                assignment_snapshot(new),
                now,
            )
        return new

    def unassign(self, assignment_id: int, *, actor: Actor = SYSTEM) -> bool:
        where = plan_assignments.c.id == assignment_id
        with self._write() as conn:
            row = conn.execute(sa.select(plan_assignments).where(where).with_for_update()).first()
            if row is None:
                return False
            old = assignment_from_row(row)
            conn.execute(sa.delete(plan_assignments).where(where))
            self._config._audit(
                conn,
                actor,
                "plan.unassign",
                old.tenant_id,
                assignment_snapshot(old),
                None,
                utcnow(),
            )
        return True
