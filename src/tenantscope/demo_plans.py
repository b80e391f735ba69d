"""The demo's billing plans: the seeds' three tiers (enterprise, professional, starter) as
three plans, and each demo tenant on its tier's plan (``tenantscope demo`` runs
``configure_plans`` after ``demo.configure_tenants``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from tenantscope.billing.plans import check_plan, plan_at
from tenantscope.demo import DEMO, DemoTenant
from tenantscope.limits.periods import period
from tenantscope.storage.plan_state import Plan, PlanAssignment

if TYPE_CHECKING:
    from tenantscope.storage.base import ConfigStore

# The seeds' three tiers as billing plans (the figures are the demo's, sized to its spend):
# enterprise pays a margin on provider cost beyond an allowance in USD, professional gets
# summaries included and pays per action beyond them, starter a small fee and a margin.
DEMO_PLANS: dict[str, dict[str, object]] = {
    "enterprise": {
        "description": "Enterprise tier: provider cost + 20 % beyond $50 included",
        "base_fee_usd": "500",
        "minimum_usd": "600",
        "included_usd": "50",
        "overage": "cost_plus",
        "margin_pct": "20",
    },
    "professional": {
        "description": "Professional tier: 300 summaries included, then per action",
        "base_fee_usd": "99",
        "included_units": 300,
        "included_action": "summary.generated",
        "overage": "per_unit",
        "unit_prices": {
            "action:summary.generated": "0.05",
            "action:action_items.extracted": "0.03",
            "action:question.answered": "0.02",
            "action:email.drafted": "0.02",
        },
    },
    "starter": {
        "description": "Starter tier: provider cost + 50 % beyond $1 included",
        "base_fee_usd": "19",
        "included_usd": "1",
        "overage": "cost_plus",
        "margin_pct": "50",
    },
}


def configure_plans(config: ConfigStore, tenants: Sequence[DemoTenant], since: datetime) -> None:
    """One plan per tier (``DEMO_PLANS``, created or brought back to the demo's figures) and
    each demo tenant on its tier's plan from the start of the billing period holding
    ``since`` (the demo's first data), so every period with data is billed whole. Run
    again it changes nothing: a tenant already on its plan then is left alone."""
    store = config.plans
    existing = {p.name: p for p in store.list_plans()}
    by_tier: dict[str, Plan] = {}
    for tier, fields in DEMO_PLANS.items():
        wanted = check_plan({"name": tier, **fields})
        old = existing.get(tier)
        if old is None:
            by_tier[tier] = store.add_plan(wanted, actor=DEMO)
            continue
        assert old.id is not None
        wanted.id, wanted.created_at, wanted.updated_at = old.id, old.created_at, old.updated_at
        replaced = store.replace_plan(old.id, wanted, actor=DEMO) if wanted != old else None
        by_tier[tier] = replaced or old
    history = store.list_assignments()
    for t in tenants:
        plan = by_tier.get(t.tier)
        if plan is None or plan.id is None:
            continue
        start = period(since, plan.timezone, plan.anchor_day)[0]
        if plan_at(history, t.tenant_id, start) != plan.id:
            store.assign(PlanAssignment(t.tenant_id, plan.id, start), actor=DEMO)
