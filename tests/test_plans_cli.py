"""`tenantscope plans ...` on a real data dir: the seeds' tiers as plans, field errors named
per field with the flag to fix and nothing stored, assignments with their history and
the current one, and a plan in use that is not deleted."""

from __future__ import annotations

import json
from pathlib import Path

from tenantscope.cli import app
from tenantscope.storage.sqlite_config import SQLiteConfigStore
from tests.test_cli import runner


def _run(data_dir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)], env={"COLUMNS": "220"})
    return result.exit_code, result.output


def test_plans_are_created_changed_listed_and_removed(tmp_path: Path) -> None:
    d = tmp_path / "data"
    code, out = _run(
        d, "plans", "create", "enterprise", "--base-fee", "1500", "--included-usd", "400",
        "--margin", "20", "--minimum", "2000", "--timezone", "Europe/Berlin",
        "--anchor-day", "15", "--description", "big customers", "--json",
    )  # fmt: skip
    assert code == 0, out
    ent = json.loads(out)
    assert (ent["ref"], ent["base_fee_usd"], ent["included_usd"], ent["margin_pct"]) == (
        "P1",
        "1500",
        "400",
        "20",
    )
    assert (ent["minimum_usd"], ent["timezone"], ent["anchor_day"]) == ("2000", "Europe/Berlin", 15)
    code, out = _run(
        d, "plans", "create", "professional", "--base-fee", "299", "--included-units", "500",
        "--included-action", "summary.generated", "--overage", "per_unit",
        "--unit-price", "action:summary.generated=0.40", "--unit-price", "feature:qa=0.1",
    )  # fmt: skip
    assert code == 0, out
    assert "professional" in out and "500 units of summary.generated" in out
    assert "action:summary.generated 0.40 USD per unit" in out
    code, out = _run(d, "plans", "update", "professional", "--base-fee", "349", "--json")
    assert code == 0, out
    pro = json.loads(out)
    assert pro["base_fee_usd"] == "349" and pro["unit_prices"]["feature:qa"] == "0.1"
    code, out = _run(d, "plans", "update", "P2", "--name", "pro", "--json")
    assert code == 0 and json.loads(out)["name"] == "pro"
    code, out = _run(d, "plans", "list")
    assert code == 0 and "enterprise" in out and "provider cost + 20 %" in out and "pro" in out
    code, out = _run(d, "plans", "list", "--json")
    assert [p["name"] for p in json.loads(out)] == ["enterprise", "pro"]
    code, out = _run(d, "plans", "show", "1")
    assert code == 0 and "big customers" in out and "monthly, Europe/Berlin, from day 15" in out
    code, out = _run(d, "plans", "delete", "pro")
    assert code == 0 and "P2 (pro) removed" in out
    code, out = _run(d, "plans", "show", "pro")
    assert code == 1 and "no plan 'pro'" in out


def test_wrong_fields_are_named_with_their_flags_and_nothing_is_stored(tmp_path: Path) -> None:
    d = tmp_path / "data"
    code, out = _run(
        d, "plans", "create", "x", "--base-fee", "-5", "--margin", "-101",
        "--included-units", "10", "--timezone", "Nowhere/Land", "--anchor-day", "30",
    )  # fmt: skip
    assert code == 1
    assert "the plan was not saved" in out
    for line in (
        "base_fee_usd (--base-fee)",
        "margin_pct (--margin)",
        "included_action (--included-action)",
        "timezone (--timezone)",
        "anchor_day (--anchor-day)",
    ):
        assert line in out, out
    code, out = _run(d, "plans", "create", "x", "--overage", "per_unit", "--unit-price", "oops")
    assert code == 1 and "unit_prices (--unit-price)" in out
    _run(d, "plans", "create", "starter")
    code, out = _run(d, "plans", "create", "Starter")
    assert code == 1 and "name (NAME / --name)" in out and "unique" in out
    store = SQLiteConfigStore(d / "config.db")
    try:
        assert [p.name for p in store.plans.list_plans()] == ["starter"]
    finally:
        store.close()


def test_assignments_history_and_a_plan_in_use(tmp_path: Path) -> None:
    d = tmp_path / "data"
    _run(d, "plans", "create", "starter", "--base-fee", "29")
    _run(d, "plans", "create", "enterprise", "--base-fee", "1500", "--margin", "20")
    code, out = _run(d, "plans", "assign", "apex-legal", "starter", "--from", "2020-01-01")
    assert code == 0 and "apex-legal on P1 (starter) from 2020-01-01T00:00:00Z" in out, out
    code, out = _run(
        d, "plans", "assign", "apex-legal", "enterprise", "--from", "2099-06-01T12:00:00Z",
        "--json",
    )  # fmt: skip
    assert code == 0, out
    assert json.loads(out)["current"] is False and json.loads(out)["plan_name"] == "enterprise"
    code, out = _run(d, "plans", "assignments", "--tenant", "apex-legal", "--json")
    rows = json.loads(out)
    assert [(r["plan_name"], r["current"], r["until"]) for r in rows] == [
        ("starter", True, "2099-06-01T12:00:00Z"),
        ("enterprise", False, None),
    ]
    code, out = _run(d, "plans", "assignments")
    assert code == 0 and "current" in out and "P2 enterprise" in out
    code, out = _run(d, "plans", "show", "starter", "--json")
    assert [a["tenant_id"] for a in json.loads(out)["assignments"]] == ["apex-legal"]
    code, out = _run(d, "plans", "assign", "", "starter", "--from", "someday")
    assert code == 1
    assert "tenant_id (TENANT)" in out and "effective_from (--from)" in out
    code, out = _run(d, "plans", "delete", "starter")
    assert code == 1 and "assigned to apex-legal" in out
    code, out = _run(d, "plans", "unassign", str(rows[0]["id"]))
    assert code == 0 and "removed" in out
    code, out = _run(d, "plans", "unassign", str(rows[0]["id"]))
    assert code == 1 and "no assignment" in out
    code, out = _run(d, "plans", "delete", "starter")
    assert code == 0, out
    code, out = _run(d, "audit", "--json")
    actions = [e["action"] for e in json.loads(out)]
    assert actions.count("plan.assign") == 2 and "plan.unassign" in actions
