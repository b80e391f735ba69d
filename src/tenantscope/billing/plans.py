"""What a plan may say, the one check every way in (API, CLI, later the dashboard) runs,
and which plan a tenant is on when.

``check_plan`` turns a submission into a stored ``Plan`` (or raises ``InvalidFields``
naming every wrong field); ``check_assignment`` does the same for putting a tenant on a
plan from a moment.

A plan:

- ``base_fee_usd`` per period (default 0) and an optional ``minimum_usd``: a period's
  total (base fee + overage) is at least the minimum; what makes up the difference is a
  line of its own;
- included usage per period: ``included_usd`` (USD of *provider cost*), or
  ``included_units`` of one ``included_action`` (a ``billable_action``), or neither;
- overage — usage beyond the allowance: ``cost_plus`` (provider cost x (1 + ``margin_pct``
  / 100); ``margin_pct`` from -100, default 0) or ``per_unit`` (``unit_prices``: USD per
  unit of a billable_action or a feature);
- the period: calendar months in ``timezone`` (IANA, default UTC) starting on
  ``anchor_day`` (1-28, default 1), as budgets count them (``limits/periods.py``).

``unit_prices`` keys say what they price with a prefix: ``action:<billable_action>`` or
``feature:<feature>``. One object rather than two: the order of precedence lives in one
place and the key says its kind wherever it is shown or typed (``--unit-price
action:summary.generated=0.40``), and an action and a feature may share a name without
colliding. A unit is one trace carrying that billable_action (or feature): an action that
made three LLM calls is one unit. A trace whose action has a price is priced by it, else
by its feature's price; usage with neither price costs nothing beyond the base fee on a
per_unit plan (an invoice still shows its provider cost).

**Which plan, and a change mid-period.** A tenant's plan at time t is the assignment with
the latest ``effective_from`` <= t (none: no plan, nothing billed). Periods follow the
plan in force. A change inside a period splits it into segments at the change
(``billing_segments``); each segment is billed by its own plan: the plan's base fee,
minimum and allowance are prorated by the segment's share of the period it lies in
(segment length / period length, to the microsecond), and the segment's usage consumes
only the segment's allowance and is priced by the segment's plan. An allowance is not
carried from one segment to the next. A segment never crosses its plan's period
boundary: when the new plan has another time zone or anchor day, its first segment is
the rest of its own period holding the change, prorated by that period.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from tenantscope.errors import InvalidFields
from tenantscope.limits.definitions import _text  # the same text check as a limit's
from tenantscope.limits.periods import check_period, period, zone
from tenantscope.storage.plan_rows import DEFINITION, assignment_snapshot, plan_snapshot
from tenantscope.storage.plan_state import OVERAGES, UNIT_KINDS, Plan, PlanAssignment
from tenantscope.storage.validation import MAX_LABEL, MAX_MONEY, MAX_TENANT_ID

PLAN_FIELDS = ("name", *DEFINITION)  # the stored definition's fields, and the name
ASSIGNMENT_FIELDS = ("tenant_id", "plan_id", "effective_from")
MAX_DESCRIPTION = 2000
MAX_UNITS = 10**12
MAX_UNIT_PRICES = 200
MONEY_PLACES = 9  # as records' costs: a unit price of $0.000000001 is still exact
MAX_MARGIN = Decimal(10) ** 6
_PRORATED = Decimal(10) ** -MONEY_PLACES
_MONEY_HELP = f'a decimal string of USD, 0 or more, at most {MONEY_PLACES} places (e.g. "0.40")'


def _decimal(value: Any) -> Decimal:
    """An exact decimal from a string, an int or a Decimal; ValueError for anything else
    (a binary float is not exact: money is sent as a string)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise ValueError
    try:
        out = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError from exc
    if not out.is_finite():
        raise ValueError
    exponent = out.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MONEY_PLACES:
        raise ValueError
    return out


def _money(value: Any, *, optional: bool) -> Decimal | None:
    if value is None or value == "":
        if optional:
            return None
        raise ValueError
    out = _decimal(value)
    if not Decimal(0) <= out < MAX_MONEY:
        raise ValueError
    return out


def _unit_prices(value: Any) -> dict[str, Decimal]:
    """``{"action:x": "0.4", "feature:y": "1"}``; a string ``action:x=0.4,feature:y=1``
    (a form's or the CLI's) is read the same way. ValueError with what is wrong."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        pairs: list[tuple[str, Any]] = []
        for part in value.split(","):
            if part.strip():
                key, sep, price = part.partition("=")
                if not sep:
                    raise ValueError(f"{part.strip()!r}: write KIND:NAME=USD")
                pairs.append((key.strip(), price.strip()))
        value = dict(pairs)
    if not isinstance(value, dict):
        raise ValueError("an object of action:<billable_action> or feature:<feature> -> USD")
    if len(value) > MAX_UNIT_PRICES:
        raise ValueError(f"at most {MAX_UNIT_PRICES} prices")
    out: dict[str, Decimal] = {}
    for key, price in value.items():
        kind, _, name = str(key).partition(":")
        if kind not in UNIT_KINDS or not name.strip() or len(name) > MAX_TENANT_ID:
            raise ValueError(f"{key!r}: keys are action:<billable_action> or feature:<feature>")
        try:
            amount = _money(price, optional=False)
        except ValueError:
            raise ValueError(f"{key}: {_MONEY_HELP}") from None
        assert amount is not None
        out[f"{kind}:{name.strip()}"] = amount
    return out


def check_plan(data: Any, base: Plan | None = None) -> Plan:
    """The plan a submission (a JSON object of ``PLAN_FIELDS``) describes. With ``base``
    (the stored plan an edit starts from), fields left out keep its values. Name
    uniqueness is the store's to check (it sees the other plans)."""
    if not isinstance(data, dict):
        raise InvalidFields({"body": "must be a JSON object of the plan's fields"})
    problems: dict[str, str] = {}
    for unknown in sorted(set(data) - set(PLAN_FIELDS)):
        problems[unknown] = f"not a plan field (fields: {', '.join(PLAN_FIELDS)})"
    start = base or Plan(name="")
    # an edit that switches the allowance or the overage kind drops the other kind's
    # stored values it does not give (a PATCH {"overage": "per_unit", ...} need not
    # also send margin_pct: null)
    dropped: set[str] = set()
    if base is not None:
        if data.get("overage") not in (None, base.overage):
            dropped |= {"margin_pct", "unit_prices"}
        if data.get("included_usd") not in (None, ""):
            dropped |= {"included_units", "included_action"}
        if data.get("included_units") not in (None, "") or data.get("included_action"):
            dropped.add("included_usd")

    def get(name: str) -> Any:
        if name in data:
            return data[name]
        return None if name in dropped else getattr(start, name)

    name = get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_LABEL:
        problems["name"] = f"required, at most {MAX_LABEL} characters"
        name = ""
    description = _text(problems, "description", get("description"), MAX_DESCRIPTION, "text")
    money: dict[str, Decimal | None] = {}
    for field_, optional in (
        ("base_fee_usd", False),
        ("minimum_usd", True),
        ("included_usd", True),
    ):
        raw = get(field_)
        if field_ == "base_fee_usd" and raw in (None, ""):
            raw = "0"
        try:
            money[field_] = _money(raw, optional=optional)
        except ValueError:
            problems[field_] = _MONEY_HELP + ("" if not optional else ", or empty")
            money[field_] = None
    units = get("included_units")
    if units in (None, ""):
        units = None
    elif isinstance(units, str) and units.strip().isdigit():
        units = int(units.strip())
    if units is not None and (
        isinstance(units, bool) or not isinstance(units, int) or not 1 <= units <= MAX_UNITS
    ):
        problems["included_units"] = f"a whole number from 1 to {MAX_UNITS}, or empty"
        units = None
    action = _text(problems, "included_action", get("included_action"), MAX_TENANT_ID, "a name")
    if money["included_usd"] is not None and (units is not None or action):
        problems["included_usd"] = (
            "give included_usd (provider cost) or included_units with included_action, not both"
        )
    if units is not None and not action and "included_action" not in problems:
        problems["included_action"] = "required with included_units: the billable_action counted"
    if action and units is None and "included_units" not in problems:
        problems["included_units"] = "required with included_action: how many per period"
    overage = get("overage") or "cost_plus"
    if overage not in OVERAGES:
        problems["overage"] = "cost_plus (provider cost + margin) or per_unit (unit_prices)"
    margin: Decimal | None = None
    raw_margin = get("margin_pct")
    if raw_margin not in (None, ""):
        try:
            margin = _decimal(raw_margin)
            if not Decimal(-100) <= margin <= MAX_MARGIN:
                raise ValueError
        except ValueError:
            problems["margin_pct"] = (
                'a decimal string of percent from -100 (e.g. "20": provider cost x 1.20)'
            )
            margin = None
    prices: dict[str, Decimal] = {}
    try:
        prices = _unit_prices(get("unit_prices"))
    except ValueError as exc:
        problems["unit_prices"] = str(exc)
    if overage == "per_unit":
        if raw_margin not in (None, "") and "margin_pct" not in problems:
            problems["margin_pct"] = "only with overage cost_plus (per_unit prices units)"
        if not prices and "unit_prices" not in problems:
            problems["unit_prices"] = "required with overage per_unit: at least one price"
    elif overage == "cost_plus" and prices:
        problems["unit_prices"] = "only with overage per_unit"
    tz, anchor = check_period(problems, get("timezone"), get("anchor_day"))
    if problems:
        raise InvalidFields(problems)
    base_fee = money["base_fee_usd"]
    assert base_fee is not None
    return Plan(
        id=start.id,
        created_at=start.created_at,
        updated_at=start.updated_at,
        name=name.strip(),
        description=description,
        base_fee_usd=base_fee,
        minimum_usd=money["minimum_usd"],
        included_usd=money["included_usd"],
        included_units=units,
        included_action=action,
        overage=overage,
        margin_pct=margin if overage == "cost_plus" else None,
        unit_prices=prices,
        timezone=str(tz),
        anchor_day=anchor,
    )


def parse_moment(value: Any, tz_name: str = "UTC") -> datetime:
    """An RFC 3339 time (``2026-12-01T00:00:00Z``; without an offset: in ``tz_name``), a
    date (``2026-12-01``: local midnight in ``tz_name``, the plan's time zone, so a
    change on the 1st lines up with the plan's period) or epoch seconds. ValueError."""
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        return datetime.fromtimestamp(value, timezone.utc)
    if not isinstance(value, str) or not value.strip():
        raise ValueError
    text = value.strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text), timezone.utc)
    at = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=zone(tz_name))
    return at.astimezone(timezone.utc)


def check_assignment(data: Any, plans: Sequence[Plan]) -> PlanAssignment:
    """Put ``tenant_id`` on plan ``plan_id`` (an id of one of ``plans``) from
    ``effective_from`` (past or future; see ``parse_moment``)."""
    if not isinstance(data, dict):
        raise InvalidFields({"body": "must be a JSON object of the assignment's fields"})
    problems: dict[str, str] = {}
    for unknown in sorted(set(data) - set(ASSIGNMENT_FIELDS)):
        problems[unknown] = f"not an assignment field (fields: {', '.join(ASSIGNMENT_FIELDS)})"
    tenant_id = data.get("tenant_id")
    if not isinstance(tenant_id, str) or not tenant_id.strip() or len(tenant_id) > MAX_TENANT_ID:
        problems["tenant_id"] = f"required: the tenant's id (at most {MAX_TENANT_ID} characters)"
        tenant_id = ""
    raw_plan = data.get("plan_id")
    plan = None
    if isinstance(raw_plan, str) and raw_plan.strip().isdigit():
        raw_plan = int(raw_plan.strip())
    if isinstance(raw_plan, int) and not isinstance(raw_plan, bool):
        plan = next((p for p in plans if p.id == raw_plan), None)
    if plan is None:
        problems["plan_id"] = f"the id of a plan; {raw_plan!r} is none" + (
            "" if plans else " (there are no plans yet)"
        )
    effective_from = datetime.min.replace(tzinfo=timezone.utc)
    try:
        effective_from = parse_moment(data.get("effective_from"), plan.timezone if plan else "UTC")
    except (ValueError, OverflowError, OSError):
        problems["effective_from"] = (
            "required: when the plan starts (RFC 3339, e.g. 2026-12-01T00:00:00Z; a date"
            " such as 2026-12-01 is midnight in the plan's time zone)"
        )
    if problems:
        raise InvalidFields(problems)
    assert plan is not None and plan.id is not None
    return PlanAssignment(tenant_id=tenant_id, plan_id=plan.id, effective_from=effective_from)


# -- which plan when ---------------------------------------------------------------------


def _history(assignments: Sequence[PlanAssignment], tenant_id: str) -> list[PlanAssignment]:
    return sorted(
        (a for a in assignments if a.tenant_id == tenant_id), key=lambda a: a.effective_from
    )


def plan_at(assignments: Sequence[PlanAssignment], tenant_id: str, at: datetime) -> int | None:
    """The id of the plan ``tenant_id`` is on at ``at``: the assignment with the latest
    ``effective_from`` <= ``at`` (None: no plan yet)."""
    current = None
    for a in _history(assignments, tenant_id):
        if a.effective_from > at:
            break
        current = a.plan_id
    return current


def current_assignment(
    assignments: Sequence[PlanAssignment], tenant_id: str, at: datetime
) -> PlanAssignment | None:
    """The assignment in force at ``at`` (what ``plan_at`` answers, with its id)."""
    found = None
    for a in _history(assignments, tenant_id):
        if a.effective_from > at:
            break
        found = a
    return found


def segments(
    assignments: Sequence[PlanAssignment], tenant_id: str, start: datetime, end: datetime
) -> list[tuple[int, datetime, datetime]]:
    """[start, end) cut where the tenant's plan changes: (plan id, from, until) in time
    order. Time without a plan is in no segment (it is not billed); consecutive
    assignments of the same plan are one segment."""
    out: list[tuple[int, datetime, datetime]] = []
    if end <= start:
        return out
    current = plan_at(assignments, tenant_id, start)
    since = start
    for a in _history(assignments, tenant_id):
        if not start < a.effective_from < end or a.plan_id == current:
            continue
        if current is not None:
            out.append((current, since, a.effective_from))
        current, since = a.plan_id, a.effective_from
    if current is not None:
        out.append((current, since, end))
    return out


@dataclass(frozen=True, slots=True)
class Segment:
    """Part of a period billed by one plan: [start, end) inside its plan's period
    [period_start, period_end)."""

    plan_id: int
    start: datetime
    end: datetime
    period_start: datetime
    period_end: datetime

    @property
    def whole(self) -> bool:
        return self.start == self.period_start and self.end == self.period_end

    def prorate(self, amount: Decimal) -> Decimal:
        """``amount`` (a per-period fee, minimum or allowance) times the segment's share
        of its period, to the microsecond, rounded half-even to 9 decimal places (the
        invoice rounds its totals to the cent by its own rule)."""
        if self.whole:
            return amount
        part = _micros(self.end - self.start)
        total = _micros(self.period_end - self.period_start)
        return (amount * part / total).quantize(_PRORATED, rounding=ROUND_HALF_EVEN)


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def billing_segments(
    assignments: Sequence[PlanAssignment],
    plans: Mapping[int, Plan],
    tenant_id: str,
    start: datetime,
    end: datetime,
) -> list[Segment]:
    """``segments`` cut further at each plan's own period boundaries, so that each lies in
    one period of its plan (the rule in this module's docstring)."""
    out: list[Segment] = []
    for plan_id, seg_start, seg_end in segments(assignments, tenant_id, start, end):
        plan = plans.get(plan_id)
        if plan is None:
            raise KeyError(f"plan {plan_id} of tenant {tenant_id!r} is not among the plans")
        at = seg_start
        while at < seg_end:
            p_start, p_end = period(at, plan.timezone, plan.anchor_day)
            until = min(p_end, seg_end)
            out.append(Segment(plan_id, at, until, p_start, p_end))
            at = until
    return out


# -- as the API and the CLI show them ---------------------------------------------------


def plan_json(plan: Plan) -> dict[str, Any]:
    out = plan_snapshot(plan)
    assert out is not None
    return out


def assignment_rows(
    assignments: Sequence[PlanAssignment], plans: Sequence[Plan], now: datetime
) -> list[dict[str, Any]]:
    """Each assignment with its plan's name, until when it holds (the tenant's next
    assignment; null: open-ended) and whether it is the one in force at ``now``: the
    API's and the CLI's one answer."""
    names = {p.id: p.name for p in plans}
    out: list[dict[str, Any]] = []
    ordered = sorted(assignments, key=lambda a: (a.tenant_id, a.effective_from))
    for i, a in enumerate(ordered):
        nxt = ordered[i + 1] if i + 1 < len(ordered) else None
        if nxt is not None and nxt.tenant_id != a.tenant_id:
            nxt = None
        row = assignment_snapshot(a)
        row["plan_name"] = names.get(a.plan_id, "")
        row["until"] = None if nxt is None else assignment_snapshot(nxt)["effective_from"]
        row["current"] = a.effective_from <= now and (nxt is None or now < nxt.effective_from)
        out.append(row)
    return out
