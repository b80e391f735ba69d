"""``tenantscope plans``: billing plans and which tenant is on which plan from when, on the
data dir's config store (works while the server runs). The seeds' tiers, e.g.

    tenantscope plans create enterprise --base-fee 1500 --included-usd 400 --margin 20
    tenantscope plans create professional --base-fee 299 --included-units 500 \\
        --included-action summary.generated --overage per_unit \\
        --unit-price action:summary.generated=0.40
    tenantscope plans assign apex-legal enterprise --from 2026-12-01
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from tenantscope.billing.plans import assignment_rows, check_assignment, check_plan, plan_json
from tenantscope.billing.terms import included_text, overage_text, period_text
from tenantscope.cli_alerts import JsonOpt, _open
from tenantscope.cli_common import DataDirOpt, _fail, console
from tenantscope.errors import Conflict, InvalidFields
from tenantscope.storage.base import CLI, ConfigStore
from tenantscope.storage.plan_state import OVERAGES, Plan

plans_app = typer.Typer(
    help="Billing plans and their assignment to tenants (works while the server runs)."
)

# the command-line flag of each field check_plan / check_assignment may name
FLAGS = {
    "name": "NAME / --name",
    "description": "--description",
    "base_fee_usd": "--base-fee",
    "minimum_usd": "--minimum",
    "included_usd": "--included-usd",
    "included_units": "--included-units",
    "included_action": "--included-action",
    "overage": "--overage",
    "margin_pct": "--margin",
    "unit_prices": "--unit-price",
    "timezone": "--timezone",
    "anchor_day": "--anchor-day",
    "tenant_id": "TENANT",
    "plan_id": "PLAN",
    "effective_from": "--from",
}


def _invalid(what: str, exc: InvalidFields) -> None:
    """Each field to fix on a line of its own, named as the command line names it."""
    lines = "\n".join(
        f"  {name}" + (f" ({FLAGS[name]})" if name in FLAGS else "") + f": {message}"
        for name, message in exc.problems.items()
    )
    _fail(f"the {what} was not saved; fix:\n{lines}")


def _find(cfg: ConfigStore, ref: str) -> Plan:
    """A plan by id (``P3`` or ``3``) or by name (case aside)."""
    plans = cfg.plans.list_plans()
    number = ref[1:] if ref[:1] in ("P", "p") and ref[1:].isdigit() else ref
    for p in plans:
        if (number.isdigit() and p.id == int(number)) or p.name.lower() == ref.lower():
            return p
    _fail(f"no plan {ref!r} (`tenantscope plans list` shows them)")


def _usd(value: Any) -> str:
    return "—" if value is None else f"${format(value, 'f')}"


def _print_plan(p: Plan) -> None:
    minimum = f", minimum {_usd(p.minimum_usd)}" if p.minimum_usd is not None else ""
    console.print(
        f"plan {p.ref}: [bold]{escape(p.name)}[/bold] — base fee {_usd(p.base_fee_usd)}"
        f"{minimum}, included {escape(included_text(p))}, overage {escape(overage_text(p))},"
        f" {period_text(p)}",
        markup=True,
        highlight=False,
    )


DescriptionOpt = Annotated[str | None, typer.Option(help="what the plan is for")]
BaseFeeOpt = Annotated[str | None, typer.Option("--base-fee", help="USD per period (default 0)")]
MinimumOpt = Annotated[
    str | None, typer.Option("--minimum", help="USD a period costs at least ('' clears)")
]
IncludedUsdOpt = Annotated[
    str | None,
    typer.Option("--included-usd", help="allowance per period: USD of provider cost"),
]
IncludedUnitsOpt = Annotated[
    str | None,
    typer.Option("--included-units", help="allowance per period: units of --included-action"),
]
IncludedActionOpt = Annotated[
    str | None, typer.Option("--included-action", help="the billable_action units count")
]
OverageOpt = Annotated[
    str | None, typer.Option(help=f"{' or '.join(OVERAGES)} (default cost_plus)")
]
MarginOpt = Annotated[
    str | None, typer.Option("--margin", help="cost_plus: percent on provider cost, e.g. 20")
]
UnitPriceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--unit-price",
        help="per_unit: action:NAME=USD or feature:NAME=USD (repeat for more)",
    ),
]
TimezoneOpt = Annotated[
    str | None, typer.Option("--timezone", help="IANA time zone of periods (default UTC)")
]
AnchorOpt = Annotated[
    int | None, typer.Option("--anchor-day", help="the day a period starts, 1-28 (default 1)")
]


def _plan_fields(unit_price: list[str] | None, **given: Any) -> dict[str, Any]:
    """The options given, as check_plan's fields (left out: not given)."""
    names = {
        "base_fee": "base_fee_usd",
        "minimum": "minimum_usd",
        "included_usd": "included_usd",
        "margin": "margin_pct",
    }
    out = {names.get(k, k): v for k, v in given.items() if v is not None}
    if unit_price is not None:
        prices: dict[str, str] = {}
        for item in unit_price:
            if not item.strip():
                continue
            key, sep, usd = item.rpartition("=")
            if not sep:
                _invalid("plan", InvalidFields({"unit_prices": f"{item!r}: write KIND:NAME=USD"}))
            prices[key.strip()] = usd.strip()
        out["unit_prices"] = prices
    return out


def _emit(plan: Plan, as_json: bool) -> None:
    print(json.dumps(plan_json(plan), indent=2)) if as_json else _print_plan(plan)


@plans_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="the plan's name (unique)")],
    description: DescriptionOpt = None,
    base_fee: BaseFeeOpt = None,
    minimum: MinimumOpt = None,
    included_usd: IncludedUsdOpt = None,
    included_units: IncludedUnitsOpt = None,
    included_action: IncludedActionOpt = None,
    overage: OverageOpt = None,
    margin: MarginOpt = None,
    unit_price: UnitPriceOpt = None,
    timezone_: TimezoneOpt = None,
    anchor_day: AnchorOpt = None,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a plan: base fee, minimum, included usage and how overage is priced."""
    given = _plan_fields(
        unit_price, name=name, description=description, base_fee=base_fee, minimum=minimum,
        included_usd=included_usd, included_units=included_units,
        included_action=included_action, overage=overage, margin=margin, timezone=timezone_,
        anchor_day=anchor_day,
    )  # fmt: skip
    cfg = _open(data_dir)
    try:
        plan = cfg.plans.add_plan(check_plan(given), actor=CLI)
    except InvalidFields as exc:
        _invalid("plan", exc)
        return
    finally:
        cfg.close()
    _emit(plan, as_json)


@plans_app.command("update")
def update(
    plan_ref: Annotated[str, typer.Argument(metavar="PLAN", help="P3, 3 or its name")],
    name: Annotated[str | None, typer.Option(help="a new name")] = None,
    description: DescriptionOpt = None,
    base_fee: BaseFeeOpt = None,
    minimum: MinimumOpt = None,
    included_usd: IncludedUsdOpt = None,
    included_units: IncludedUnitsOpt = None,
    included_action: IncludedActionOpt = None,
    overage: OverageOpt = None,
    margin: MarginOpt = None,
    unit_price: UnitPriceOpt = None,
    timezone_: TimezoneOpt = None,
    anchor_day: AnchorOpt = None,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Change a plan: options given replace those values, the others stay (--unit-price
    replaces all unit prices)."""
    given = _plan_fields(
        unit_price, name=name, description=description, base_fee=base_fee, minimum=minimum,
        included_usd=included_usd, included_units=included_units,
        included_action=included_action, overage=overage, margin=margin, timezone=timezone_,
        anchor_day=anchor_day,
    )  # fmt: skip
    cfg = _open(data_dir)
    try:
        current = _find(cfg, plan_ref)
        assert current.id is not None
        new = cfg.plans.replace_plan(current.id, check_plan(given, base=current), actor=CLI)
    except InvalidFields as exc:
        _invalid("plan", exc)
        return
    finally:
        cfg.close()
    if new is None:
        _fail(f"no plan {plan_ref!r}")
    _emit(new, as_json)


@plans_app.command("list")
def list_plans(as_json: JsonOpt = False, data_dir: DataDirOpt = None) -> None:
    """Every plan, with how many tenants are on it now."""
    cfg = _open(data_dir)
    try:
        plans = cfg.plans.list_plans()
        rows = assignment_rows(cfg.plans.list_assignments(), plans, datetime.now(timezone.utc))
    finally:
        cfg.close()
    if as_json:
        print(json.dumps([plan_json(p) for p in plans], indent=2))
        return
    on_now: dict[int, int] = {}
    for r in rows:
        if r["current"]:
            on_now[r["plan_id"]] = on_now.get(r["plan_id"], 0) + 1
    table = Table("id", "name", "base fee", "minimum", "included", "overage", "period", "tenants")
    for p in plans:
        assert p.id is not None
        table.add_row(
            p.ref,
            p.name,
            _usd(p.base_fee_usd),
            _usd(p.minimum_usd),
            included_text(p),
            overage_text(p),
            f"day {p.anchor_day}, {p.timezone}",
            str(on_now.get(p.id, 0)),
        )
    console.print(table)


@plans_app.command("show")
def show(
    plan_ref: Annotated[str, typer.Argument(metavar="PLAN", help="P3, 3 or its name")],
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
) -> None:
    """One plan and the assignments that name it."""
    cfg = _open(data_dir)
    try:
        plan = _find(cfg, plan_ref)
        everyone = cfg.plans.list_assignments()
    finally:
        cfg.close()
    rows = [
        r
        for r in assignment_rows(everyone, [plan], datetime.now(timezone.utc))
        if r["plan_id"] == plan.id
    ]
    if as_json:
        print(json.dumps({**plan_json(plan), "assignments": rows}, indent=2))
        return
    _print_plan(plan)
    if plan.description:
        console.print(plan.description, markup=False, highlight=False)
    if rows:
        _assignments_table(rows)


@plans_app.command("delete")
def delete(
    plan_ref: Annotated[str, typer.Argument(metavar="PLAN", help="P3, 3 or its name")],
    data_dir: DataDirOpt = None,
) -> None:
    """Remove a plan no assignment names (refused, naming the tenants, otherwise)."""
    cfg = _open(data_dir)
    try:
        plan = _find(cfg, plan_ref)
        assert plan.id is not None
        cfg.plans.delete_plan(plan.id, actor=CLI)
    except Conflict as exc:
        _fail(exc.message)
    finally:
        cfg.close()
    console.print(f"plan {plan.ref} ({plan.name}) removed", markup=False, highlight=False)


@plans_app.command("assign")
def assign(
    tenant: Annotated[str, typer.Argument(metavar="TENANT", help="the tenant's id")],
    plan_ref: Annotated[str, typer.Argument(metavar="PLAN", help="P3, 3 or its name")],
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="when it starts: RFC 3339, or a date (midnight in the plan's time zone)",
        ),
    ] = None,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Put a tenant on a plan from a moment (past or future; the same moment again
    replaces that assignment)."""
    cfg = _open(data_dir)
    try:
        plans = cfg.plans.list_plans()
        plan = _find(cfg, plan_ref)
        data = {"tenant_id": tenant, "plan_id": plan.id, "effective_from": from_}
        added = cfg.plans.assign(check_assignment(data, plans), actor=CLI)
        rows = assignment_rows(
            cfg.plans.list_assignments(tenant), plans, datetime.now(timezone.utc)
        )
    except InvalidFields as exc:
        _invalid("assignment", exc)
        return
    finally:
        cfg.close()
    row = next(r for r in rows if r["id"] == added.id)
    if as_json:
        print(json.dumps(row, indent=2))
        return
    console.print(
        f"assignment {added.id}: {tenant} on {plan.ref} ({plan.name}) from"
        f" {row['effective_from']}" + (f" until {row['until']}" if row["until"] else ""),
        markup=False,
        highlight=False,
    )


def _assignments_table(rows: list[dict[str, Any]]) -> None:
    table = Table("id", "tenant", "plan", "from (UTC)", "until (UTC)", "now")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["tenant_id"],
            f"P{r['plan_id']} {r['plan_name']}",
            r["effective_from"],
            r["until"] or "—",
            "current" if r["current"] else "",
        )
    console.print(table)


@plans_app.command("assignments")
def assignments(
    tenant: Annotated[str | None, typer.Option("--tenant", help="one tenant's history")] = None,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Which tenant is on which plan from when, and which assignment is current."""
    cfg = _open(data_dir)
    try:
        rows = assignment_rows(
            cfg.plans.list_assignments(tenant),
            cfg.plans.list_plans(),
            datetime.now(timezone.utc),
        )
    finally:
        cfg.close()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    _assignments_table(rows)


@plans_app.command("unassign")
def unassign(
    assignment_id: Annotated[int, typer.Argument(help="the assignment's id")],
    data_dir: DataDirOpt = None,
) -> None:
    """Remove an assignment (the tenant's previous one holds on, or none)."""
    cfg = _open(data_dir)
    try:
        if not cfg.plans.unassign(assignment_id, actor=CLI):
            _fail(f"no assignment {assignment_id}")
    finally:
        cfg.close()
    console.print(f"assignment {assignment_id} removed")
