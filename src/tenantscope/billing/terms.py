"""A plan's terms in words, for people: the Plans page, the tenant page and the CLI say
them the same way. Money is the stored decimal written out exactly (no float, no
rounding)."""

from __future__ import annotations

from decimal import Decimal

from tenantscope.storage.plan_state import Plan


def usd(amount: Decimal) -> str:
    """Exact: the stored decimal as written (no float, no rounding, no exponent)."""
    return format(amount, "f") + " USD"


def _pct(value: Decimal) -> str:
    return format(value, "f")


def overage_text(plan: Plan) -> str:
    if plan.overage == "per_unit":
        prices = [f"{key} {usd(price)} per unit" for key, price in sorted(plan.unit_prices.items())]
        return "per unit: " + ", ".join(prices)
    margin = plan.margin_pct or Decimal(0)
    if margin == 0:
        return "provider cost (no margin)"
    sign = "+" if margin > 0 else "−"
    return f"provider cost {sign} {_pct(abs(margin))} %"


def included_text(plan: Plan) -> str:
    if plan.included_usd is not None:
        return f"{usd(plan.included_usd)} of provider cost per period"
    if plan.included_units is not None:
        return f"{plan.included_units:,} units of {plan.included_action} per period"
    return "none"


def period_text(plan: Plan) -> str:
    anchor = "the 1st" if plan.anchor_day == 1 else f"day {plan.anchor_day}"
    return f"monthly, {plan.timezone}, from {anchor}"
