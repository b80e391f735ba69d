"""The ConfigStore's plans contract (``config.plans``): every backend must pass these.
A backend's test module subclasses ``PlanStoreContract`` and provides the same
``make_config_store`` fixture as for ``ConfigStoreContract``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tenantscope import errors
from tenantscope.billing.plans import check_plan
from tenantscope.storage.base import Actor, ConfigStore
from tenantscope.storage.plan_state import PlanAssignment
from tests.storage.contract_config import MakeStore

OPS = Actor("api", key_id="k1", name="ops bot", role="admin")
DEC_1 = datetime(2026, 12, 1, tzinfo=timezone.utc)

PRO = {
    "name": "professional",
    "base_fee_usd": "299.50",
    "minimum_usd": "350",
    "included_units": 500,
    "included_action": "summary.generated",
    "overage": "per_unit",
    "unit_prices": {"action:summary.generated": "0.400000001", "feature:transcript_qa": "0.1"},
    "timezone": "Europe/Berlin",
    "anchor_day": 15,
}


class PlanStoreContract:
    @pytest.fixture
    def config_store(self, make_config_store: MakeStore) -> Iterator[ConfigStore]:
        store = make_config_store()
        yield store
        store.close()

    def test_plans_round_trip_exactly_and_every_change_is_audited(
        self, config_store: ConfigStore
    ) -> None:
        store = config_store.plans
        added = store.add_plan(check_plan(PRO), actor=OPS)
        assert added.id is not None and added.ref == f"P{added.id}"
        got = store.get_plan(added.id)
        assert got is not None
        assert got.base_fee_usd == Decimal("299.50") and got.minimum_usd == Decimal(350)
        assert got.unit_prices == {
            "action:summary.generated": Decimal("0.400000001"),  # exact, not a float
            "feature:transcript_qa": Decimal("0.1"),
        }
        assert (got.included_units, got.included_action, got.overage) == (
            500,
            "summary.generated",
            "per_unit",
        )
        assert (got.timezone, got.anchor_day, got.margin_pct) == ("Europe/Berlin", 15, None)
        changed = store.replace_plan(
            added.id, check_plan({"base_fee_usd": "349"}, base=got), actor=OPS
        )
        assert changed is not None and changed.base_fee_usd == Decimal(349)
        assert changed.unit_prices == got.unit_prices  # the rest stays
        assert store.replace_plan(999, changed, actor=OPS) is None
        assert store.delete_plan(added.id, actor=OPS)
        assert not store.delete_plan(added.id, actor=OPS)
        assert store.list_plans() == []
        entries = config_store.list_audit()
        assert {"plan.create", "plan.update", "plan.delete"} <= {e.action for e in entries}
        entry = next(e for e in entries if e.action == "plan.update")
        assert entry.actor.name == "ops bot" and entry.target == added.ref
        assert entry.before is not None and entry.before["base_fee_usd"] == "299.50"
        assert entry.after is not None and entry.after["base_fee_usd"] == "349"

    def test_names_are_unique_case_aside(self, config_store: ConfigStore) -> None:
        store = config_store.plans
        first = store.add_plan(check_plan({"name": "Starter"}))
        with pytest.raises(errors.InvalidFields) as err:
            store.add_plan(check_plan({"name": "starter"}))
        assert "name" in err.value.problems
        other = store.add_plan(check_plan({"name": "pro"}))
        assert other.id is not None
        with pytest.raises(errors.InvalidFields):
            store.replace_plan(other.id, check_plan({"name": "STARTER"}, base=other))
        # renaming a plan to its own name (another case) is no clash
        assert first.id is not None
        renamed = store.replace_plan(first.id, check_plan({"name": "starter"}, base=first))
        assert renamed is not None and renamed.name == "starter"
        assert [p.name for p in store.list_plans()] == ["starter", "pro"]

    def test_assignments_replace_the_same_moment_and_are_audited(
        self, config_store: ConfigStore
    ) -> None:
        store = config_store.plans
        a = store.add_plan(check_plan({"name": "a"}))
        b = store.add_plan(check_plan({"name": "b"}))
        assert a.id is not None and b.id is not None
        first = store.assign(PlanAssignment("apex", a.id, DEC_1), actor=OPS)
        later = store.assign(PlanAssignment("apex", b.id, DEC_1 + timedelta(days=10)), actor=OPS)
        store.assign(PlanAssignment("zeta", a.id, DEC_1))
        again = store.assign(PlanAssignment("apex", b.id, DEC_1), actor=OPS)
        assert again.id == first.id and again.plan_id == b.id  # replaced, not added
        history = store.list_assignments("apex")
        assert [(x.id, x.plan_id, x.effective_from) for x in history] == [
            (first.id, b.id, DEC_1),
            (later.id, b.id, DEC_1 + timedelta(days=10)),
        ]
        assert [x.tenant_id for x in store.list_assignments()] == ["apex", "apex", "zeta"]
        with pytest.raises(errors.InvalidFields) as err:
            store.assign(PlanAssignment("apex", 999, DEC_1))
        assert "plan_id" in err.value.problems
        assert later.id is not None
        assert store.unassign(later.id, actor=OPS)
        assert not store.unassign(later.id, actor=OPS)
        assert len(store.list_assignments("apex")) == 1
        entries = config_store.list_audit(target="apex")
        assert [e.action for e in entries] == [
            "plan.unassign",
            "plan.assign",
            "plan.assign",
            "plan.assign",
        ]
        replaced = entries[1]
        assert replaced.before is not None and replaced.before["plan_id"] == a.id
        assert replaced.after is not None and replaced.after["plan_id"] == b.id

    def test_a_plan_with_assignments_is_not_deleted(self, config_store: ConfigStore) -> None:
        store = config_store.plans
        plan = store.add_plan(check_plan({"name": "a"}))
        assert plan.id is not None
        for tenant in ("zeta", "apex", "apex"):
            store.assign(PlanAssignment(tenant, plan.id, DEC_1 + timedelta(days=len(tenant))))
        store.assign(PlanAssignment("apex", plan.id, DEC_1 - timedelta(days=40)))
        with pytest.raises(errors.Conflict) as err:
            store.delete_plan(plan.id)
        assert err.value.details == {"tenants": ["apex", "zeta"]}
        assert "apex, zeta" in err.value.message
        assert store.get_plan(plan.id) is not None
        for x in store.list_assignments():
            assert x.id is not None and store.unassign(x.id)
        assert store.delete_plan(plan.id)
