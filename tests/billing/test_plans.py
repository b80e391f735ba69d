"""Plans: every wrong field of a submission named at once, money exact, and which plan a
tenant is on when — including a change mid-period and an assignment in the future."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tenantscope.billing.plans import (
    assignment_rows,
    billing_segments,
    check_assignment,
    check_plan,
    plan_at,
    segments,
)
from tenantscope.errors import InvalidFields
from tenantscope.storage.plan_state import Plan, PlanAssignment

UTC = timezone.utc
DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)
JAN_1 = datetime(2027, 1, 1, tzinfo=UTC)


def _problems(data: object, base: Plan | None = None) -> dict[str, str]:
    with pytest.raises(InvalidFields) as err:
        check_plan(data, base)
    assert err.value.status == 422
    return err.value.problems


def test_a_plan_with_defaults() -> None:
    plan = check_plan({"name": "  starter  "})
    assert plan.name == "starter"
    assert plan.base_fee_usd == Decimal(0) and plan.minimum_usd is None
    assert (plan.overage, plan.margin_pct, plan.unit_prices) == ("cost_plus", None, {})
    assert (plan.timezone, plan.anchor_day) == ("UTC", 1)
    assert plan.included_usd is None and plan.included_units is None


def test_every_wrong_field_is_named_at_once() -> None:
    problems = _problems(
        {
            "name": "",
            "description": 5,
            "base_fee_usd": "-1",
            "minimum_usd": "abc",
            "included_units": 0,
            "overage": "free",
            "margin_pct": "-100.5",
            "unit_prices": {"model:gpt-4o": "1"},
            "timezone": "Mars/Olympus",
            "anchor_day": 29,
            "colour": "red",
        }
    )
    assert sorted(problems) == sorted(
        [
            "name",
            "description",
            "base_fee_usd",
            "minimum_usd",
            "included_units",
            "overage",
            "margin_pct",
            "unit_prices",
            "timezone",
            "anchor_day",
            "colour",
        ]
    )
    assert "action:" in problems["unit_prices"] and "feature:" in problems["unit_prices"]
    assert _problems([1]) == {"body": "must be a JSON object of the plan's fields"}


def test_money_is_exact_and_binary_floats_are_refused() -> None:
    plan = check_plan(
        {
            "name": "p",
            "base_fee_usd": "0.1",
            "minimum_usd": 100,
            "included_usd": "12.345678901",
            "margin_pct": "-100",
        }
    )
    assert plan.base_fee_usd + plan.base_fee_usd + plan.base_fee_usd == Decimal("0.3")
    assert plan.minimum_usd == Decimal(100)
    assert plan.included_usd == Decimal("12.345678901")
    assert plan.margin_pct == Decimal(-100)  # at cost: the lowest margin there is
    for field in ("base_fee_usd", "minimum_usd", "included_usd", "margin_pct"):
        assert field in _problems({"name": "p", field: 0.1})
    assert "base_fee_usd" in _problems({"name": "p", "base_fee_usd": "0.0000000001"})
    assert "base_fee_usd" in _problems({"name": "p", "base_fee_usd": "NaN"})
    problems = _problems({"name": "p", "overage": "per_unit", "unit_prices": {"action:a": 0.4}})
    assert list(problems) == ["unit_prices"]


def test_allowance_is_usd_or_units_of_an_action() -> None:
    units = check_plan({"name": "p", "included_units": "500", "included_action": "report.made"})
    assert (units.included_units, units.included_action) == (500, "report.made")
    assert list(_problems({"name": "p", "included_units": 5})) == ["included_action"]
    assert list(_problems({"name": "p", "included_action": "x"})) == ["included_units"]
    both = {"name": "p", "included_usd": "5", "included_units": 5, "included_action": "x"}
    assert list(_problems(both)) == ["included_usd"]


def test_overage_kinds_and_their_fields() -> None:
    per_unit = check_plan(
        {
            "name": "p",
            "overage": "per_unit",
            "unit_prices": "action:summary.generated=0.40, feature:transcript_qa=0.1",
        }
    )
    assert per_unit.unit_prices == {
        "action:summary.generated": Decimal("0.40"),
        "feature:transcript_qa": Decimal("0.1"),
    }
    assert per_unit.margin_pct is None
    assert list(_problems({"name": "p", "overage": "per_unit"})) == ["unit_prices"]
    with_margin = {"name": "p", "overage": "per_unit", "unit_prices": {"action:a": "1"}}
    assert list(_problems({**with_margin, "margin_pct": "20"})) == ["margin_pct"]
    assert list(_problems({"name": "p", "unit_prices": {"action:a": "1"}})) == ["unit_prices"]
    # an edit switching the kind drops the other kind's stored values it does not give
    cost_plus = check_plan({"overage": "cost_plus", "margin_pct": "20"}, per_unit)
    assert (cost_plus.unit_prices, cost_plus.margin_pct) == ({}, Decimal(20))
    back = check_plan({"overage": "per_unit", "unit_prices": {"feature:f": "2"}}, cost_plus)
    assert (back.margin_pct, back.unit_prices) == (None, {"feature:f": Decimal(2)})
    to_usd = check_plan({"included_usd": "10"}, check_plan({"name": "u", **_UNITS}))
    assert (to_usd.included_usd, to_usd.included_units, to_usd.included_action) == (
        Decimal(10),
        None,
        "",
    )


_UNITS = {"included_units": 5, "included_action": "a"}


def test_an_edit_keeps_what_it_does_not_give() -> None:
    base = check_plan({"name": "p", "base_fee_usd": "10", "timezone": "Europe/Berlin"})
    base.id = 4
    edited = check_plan({"anchor_day": "15"}, base)
    assert (edited.id, edited.name, edited.base_fee_usd) == (4, "p", Decimal(10))
    assert (edited.timezone, edited.anchor_day) == ("Europe/Berlin", 15)


def _plan(pid: int, **fields: object) -> Plan:
    plan = check_plan({"name": f"p{pid}", **fields})
    plan.id = pid
    return plan


def test_an_assignment_names_every_wrong_field() -> None:
    plans = [_plan(1), _plan(2, timezone="Europe/Berlin")]
    a = check_assignment(
        {"tenant_id": "apex", "plan_id": 1, "effective_from": "2026-12-01T00:00:00Z"}, plans
    )
    assert (a.tenant_id, a.plan_id, a.effective_from) == ("apex", 1, DEC_1)
    # a date is local midnight in the plan's time zone (Berlin is UTC+1 in December)
    berlin = check_assignment(
        {"tenant_id": "apex", "plan_id": "2", "effective_from": "2026-12-01"}, plans
    )
    assert berlin.effective_from == DEC_1 - timedelta(hours=1)
    with pytest.raises(InvalidFields) as err:
        check_assignment({"tenant_id": "", "plan_id": 9, "effective_from": "soon", "x": 1}, plans)
    assert sorted(err.value.problems) == ["effective_from", "plan_id", "tenant_id", "x"]


# -- which plan when ------------------------------------------------------------------------
HISTORY = [
    PlanAssignment("apex", 1, DEC_1, id=1),
    PlanAssignment("apex", 2, DEC_1 + timedelta(days=10), id=2),  # mid-period upgrade
    PlanAssignment("apex", 3, JAN_1 + timedelta(days=40), id=3),  # in the future
    PlanAssignment("other", 9, DEC_1 - timedelta(days=99), id=4),
]


def test_plan_at_is_the_latest_assignment_not_after_the_moment() -> None:
    assert plan_at(HISTORY, "apex", DEC_1 - timedelta(microseconds=1)) is None
    assert plan_at(HISTORY, "apex", DEC_1) == 1
    assert plan_at(HISTORY, "apex", DEC_1 + timedelta(days=10)) == 2
    assert plan_at(HISTORY, "apex", JAN_1 + timedelta(days=39)) == 2
    assert plan_at(HISTORY, "apex", JAN_1 + timedelta(days=40)) == 3
    assert plan_at(list(reversed(HISTORY)), "apex", DEC_1 + timedelta(days=11)) == 2
    assert plan_at(HISTORY, "nobody", JAN_1) is None
    assert plan_at(HISTORY, "other", DEC_1) == 9


def test_a_change_mid_period_splits_it_into_segments() -> None:
    mid = DEC_1 + timedelta(days=10)
    assert segments(HISTORY, "apex", DEC_1, JAN_1) == [(1, DEC_1, mid), (2, mid, JAN_1)]
    # before the first assignment there is no plan: no segment, nothing billed
    nov = datetime(2026, 11, 1, tzinfo=UTC)
    assert segments(HISTORY, "apex", nov, DEC_1) == []
    assert segments(HISTORY, "apex", nov + timedelta(days=20), mid) == [(1, DEC_1, mid)]
    # the future assignment splits its own period, not this one
    feb_10 = JAN_1 + timedelta(days=40)
    assert segments(HISTORY, "apex", JAN_1, feb_10 + timedelta(days=5)) == [
        (2, JAN_1, feb_10),
        (3, feb_10, feb_10 + timedelta(days=5)),
    ]
    # assigning the same plan again is no change
    same = [*HISTORY, PlanAssignment("apex", 2, mid + timedelta(days=5))]
    assert segments(same, "apex", DEC_1, JAN_1) == [(1, DEC_1, mid), (2, mid, JAN_1)]
    assert segments(HISTORY, "apex", JAN_1, DEC_1) == []


def test_billing_segments_prorate_by_the_share_of_the_period() -> None:
    plans = {1: _plan(1, base_fee_usd="310"), 2: _plan(2, base_fee_usd="620")}
    mid = DEC_1 + timedelta(days=10)
    first, second = billing_segments(HISTORY[:2], plans, "apex", DEC_1, JAN_1)
    assert (first.plan_id, first.start, first.end) == (1, DEC_1, mid)
    assert (first.period_start, first.period_end) == (DEC_1, JAN_1)
    # December has 31 days: 10/31 of $310 and 21/31 of $620, exactly
    assert first.prorate(Decimal(310)) == Decimal("100.000000000")
    assert second.prorate(Decimal(620)) == Decimal("420.000000000")
    assert not first.whole
    whole = billing_segments(HISTORY[:1], plans, "apex", DEC_1, JAN_1)
    assert len(whole) == 1 and whole[0].whole and whole[0].prorate(Decimal(310)) == 310
    # a range over two periods is cut at the period boundary
    two = billing_segments(HISTORY[:1], plans, "apex", DEC_1, JAN_1 + timedelta(days=3))
    assert [(s.start, s.end) for s in two] == [(DEC_1, JAN_1), (JAN_1, JAN_1 + timedelta(days=3))]
    assert two[1].prorate(Decimal(310)) == Decimal("30.000000000")  # 3/31 of January


def test_a_new_plan_with_another_anchor_day_starts_its_own_periods() -> None:
    plans = {1: _plan(1), 2: _plan(2, anchor_day=15)}
    mid = DEC_1 + timedelta(days=10)
    history = HISTORY[:2]
    cut = billing_segments(history, plans, "apex", DEC_1, JAN_1)
    dec_15 = DEC_1 + timedelta(days=14)
    assert [(s.plan_id, s.start, s.end, s.period_start, s.period_end) for s in cut] == [
        (1, DEC_1, mid, DEC_1, JAN_1),
        (2, mid, dec_15, datetime(2026, 11, 15, tzinfo=UTC), dec_15),
        (2, dec_15, JAN_1, dec_15, datetime(2027, 1, 15, tzinfo=UTC)),
    ]
    with pytest.raises(KeyError):
        billing_segments(history, {1: plans[1]}, "apex", DEC_1, JAN_1)


def test_assignment_rows_say_which_is_current() -> None:
    plans = [_plan(1), _plan(2), _plan(3)]
    rows = assignment_rows(HISTORY[:3], plans, DEC_1 + timedelta(days=12))
    assert [(r["plan_name"], r["current"]) for r in rows] == [
        ("p1", False),
        ("p2", True),
        ("p3", False),
    ]
    assert rows[0]["until"] == "2026-12-11T00:00:00Z" and rows[2]["until"] is None
