"""What billing keeps in the ConfigStore about plans: their definitions and which tenant is
on which plan from when. ``PlanStore`` is the interface every ConfigStore backend offers as
``config.plans``; values are checked by ``tenantscope.billing.plans`` before they get here.

Nothing here computes usage or money: the billable states, grants and invoices read these
definitions (``billing/plans.py`` says how a change of plan splits a period).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tenantscope.storage.base import SYSTEM, Actor

# how usage beyond the allowance is priced: provider cost x (1 + margin_pct / 100), or a
# price per unit of a billable_action / feature
OVERAGES: tuple[str, ...] = ("cost_plus", "per_unit")
# the key kinds of ``unit_prices``: "action:<billable_action>" or "feature:<feature>"
UNIT_KINDS: tuple[str, ...] = ("action", "feature")


@dataclass(slots=True)
class Plan:
    """One plan as stored. Money is exact (``Decimal``); ``unit_prices`` maps
    ``action:<billable_action>`` / ``feature:<feature>`` to USD per unit."""

    name: str
    description: str = ""
    base_fee_usd: Decimal = Decimal(0)
    minimum_usd: Decimal | None = None
    # included usage per period: USD of provider cost, or units of one billable_action
    included_usd: Decimal | None = None
    included_units: int | None = None
    included_action: str = ""
    overage: str = "cost_plus"
    margin_pct: Decimal | None = None  # cost_plus only; None there means 0
    unit_prices: dict[str, Decimal] = field(default_factory=dict)  # per_unit only
    timezone: str = "UTC"
    anchor_day: int = 1  # the day of the month a period starts (1-28)
    id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def ref(self) -> str:
        """How audit entries and invoices name the plan."""
        return f"P{self.id}"


@dataclass(slots=True)
class PlanAssignment:
    """Tenant ``tenant_id`` is on plan ``plan_id`` from ``effective_from`` until its next
    assignment's ``effective_from`` (``billing.plans.plan_at``)."""

    tenant_id: str
    plan_id: int
    effective_from: datetime
    created_at: datetime | None = None
    id: int | None = None


class PlanStore(abc.ABC):
    @abc.abstractmethod
    def list_plans(self) -> list[Plan]:
        """Every plan, by id."""

    @abc.abstractmethod
    def get_plan(self, plan_id: int) -> Plan | None: ...

    @abc.abstractmethod
    def add_plan(self, plan: Plan, *, actor: Actor = SYSTEM) -> Plan:
        """``InvalidFields`` naming ``name`` when another plan has that name (case aside)."""

    @abc.abstractmethod
    def replace_plan(self, plan_id: int, plan: Plan, *, actor: Actor = SYSTEM) -> Plan | None:
        """None when there is no such plan; ``InvalidFields`` on a name another plan has."""

    @abc.abstractmethod
    def delete_plan(self, plan_id: int, *, actor: Actor = SYSTEM) -> bool:
        """False when there is no such plan; ``errors.Conflict`` naming the tenants when any
        assignment (past, current or future) names it: the history invoices read must not
        point at nothing."""

    @abc.abstractmethod
    def list_assignments(self, tenant_id: str | None = None) -> list[PlanAssignment]:
        """Assignments (one tenant's, or all) by tenant, then effective_from."""

    @abc.abstractmethod
    def assign(self, assignment: PlanAssignment, *, actor: Actor = SYSTEM) -> PlanAssignment:
        """Store an assignment; one for the same tenant and effective_from is replaced (it
        keeps its id). ``InvalidFields`` naming ``plan_id`` when there is no such plan."""

    @abc.abstractmethod
    def unassign(self, assignment_id: int, *, actor: Actor = SYSTEM) -> bool:
        """Remove an assignment; False when there is none with that id."""
