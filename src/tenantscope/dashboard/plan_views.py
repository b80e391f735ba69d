"""What the plan pages show: each plan's terms in words (base fee, minimum, included usage,
how usage beyond it is priced, the period), who is on which plan from when, a tenant's
plan now, and the values of the plan and assignment forms.

No routes here (dashboard/plans.py has them), so the tenant page (dashboard/pages.py) can
show a tenant's plan without importing the admin forms. Nothing here checks a plan or an
assignment: ``billing.plans.check_plan`` / ``check_assignment`` are the one validators
(the API's and the CLI's); the forms only turn posted boxes into the fields they take.
Money is shown as the stored decimals are, never through a float.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from starlette.requests import Request

from tenantscope.billing.plans import assignment_rows, current_assignment, plan_at
from tenantscope.billing.terms import included_text, overage_text, period_text, usd
from tenantscope.server.services import services_of
from tenantscope.storage.plan_state import Plan, PlanAssignment

PLAN_LABELS = {
    "name": "Name",
    "description": "Description",
    "base_fee_usd": "Base fee (USD per period)",
    "minimum_usd": "Minimum (USD per period)",
    "included_usd": "Included provider cost (USD per period)",
    "included_units": "Included units per period",
    "included_action": "Of billable_action",
    "overage": "Beyond the allowance",
    "margin_pct": "Margin (%)",
    "unit_prices": "Unit prices",
    "timezone": "Time zone",
    "anchor_day": "Period starts on day",
}
OVERAGE_OPTIONS = [
    ("cost_plus", "cost_plus: provider cost + margin"),
    ("per_unit", "per_unit: a price per unit of an action or feature"),
]
ASSIGN_LABELS = {
    "tenant_id": "Tenant",
    "plan_id": "Plan",
    "effective_from": "From",
}

Form = dict[str, list[str]]


@dataclass(frozen=True)
class PlanTerms:
    plan: Plan
    base_fee: str
    minimum: str
    included: str
    overage: str
    period: str
    tenants: tuple[str, ...] = ()  # tenants with any assignment naming it

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [
            ("Base fee", self.base_fee),
            ("Minimum", self.minimum),
            ("Included", self.included),
            ("Beyond", self.overage),
            ("Period", self.period),
        ]


def terms(plan: Plan, tenants: Sequence[str] = ()) -> PlanTerms:
    return PlanTerms(
        plan=plan,
        base_fee=f"{usd(plan.base_fee_usd)} per period",
        minimum="none" if plan.minimum_usd is None else f"{usd(plan.minimum_usd)} per period",
        included=included_text(plan),
        overage=overage_text(plan),
        period=period_text(plan),
        tenants=tuple(tenants),
    )


def plan_rows(plans: Sequence[Plan], assignments: Sequence[PlanAssignment]) -> list[PlanTerms]:
    """Every plan in words, with the tenants any assignment puts on it."""
    out = []
    for p in plans:
        tenants = sorted({a.tenant_id for a in assignments if a.plan_id == p.id})
        out.append(terms(p, tenants))
    return out


def assignments(
    found: Sequence[PlanAssignment], plans: Sequence[Plan], now: datetime
) -> list[dict[str, Any]]:
    """The API's own rows (plan name, until, current), for the table."""
    return assignment_rows(found, plans, now)


def of_tenant(request: Request, tenant_id: str) -> tuple[PlanTerms, PlanAssignment] | None:
    """The tenant page's section: the plan ``tenant_id`` is on now, in words, and the
    assignment that put it there (``plan_at`` / ``current_assignment``). None for a
    caller that does not see every tenant (a tenant key's portal: the customer-facing
    view of a plan is a later part of issue 14, and must not show the operator's
    margins) and for a tenant on no plan."""
    principal = getattr(request.state, "principal", None)
    if principal is None or not principal.can("read_all"):
        return None
    store = services_of(request).config.plans
    history = store.list_assignments(tenant_id)
    now = datetime.now(timezone.utc)
    plan_id = plan_at(history, tenant_id, now)
    since = current_assignment(history, tenant_id, now)
    plan = None if plan_id is None else store.get_plan(plan_id)
    if plan is None or since is None:
        return None
    return terms(plan), since


# -- the forms -----------------------------------------------------------------------------


def _first(form: Form, name: str) -> str:
    return form.get(name, [""])[0]


def _money(value: Decimal | None) -> str:
    return "" if value is None else format(value, "f")


def plan_values(plan: Plan | None) -> dict[str, str]:
    """The plan form's boxes for a stored plan, or a new plan's defaults."""
    p = plan or Plan(name="")
    return {
        "name": p.name,
        "description": p.description,
        "base_fee_usd": format(p.base_fee_usd, "f"),
        "minimum_usd": _money(p.minimum_usd),
        "included_usd": _money(p.included_usd),
        "included_units": "" if p.included_units is None else str(p.included_units),
        "included_action": p.included_action,
        "overage": p.overage,
        "margin_pct": _money(p.margin_pct),
        "unit_prices": ",".join(f"{k}={format(v, 'f')}" for k, v in sorted(p.unit_prices.items())),
        "timezone": p.timezone,
        "anchor_day": str(p.anchor_day),
    }


def plan_submission(form: Form) -> dict[str, str]:
    """The posted plan form: the fields ``check_plan`` takes, as typed (shown again when
    it refuses them). Every field is sent, so an edit replaces the whole definition."""
    return {name: _first(form, name) for name in PLAN_LABELS}


def assign_submission(form: Form) -> dict[str, str]:
    return {name: _first(form, name) for name in ASSIGN_LABELS}
