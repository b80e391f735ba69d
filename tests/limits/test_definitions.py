"""What a limit may say (field-level problems, nothing half-made) and which limits apply
to a tenant: its own over its configuration's shorthand over its tier's over everyone's,
slot by slot, with approvals added."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tenantscope.errors import InvalidFields
from tenantscope.limits.definitions import Resolver, check_approval, check_limit
from tenantscope.storage.base import TenantConfig
from tenantscope.storage.limit_state import LimitDef

NOW = datetime(2026, 12, 3, 12, tzinfo=timezone.utc)


def test_every_wrong_field_is_named() -> None:
    with pytest.raises(InvalidFields) as err:
        check_limit(
            {
                "name": "",
                "kind": "budget",
                "amount_usd": "-1",
                "timezone": "Mars/Olympus",
                "anchor_day": 31,
                "thresholds": "50,x",
                "mode": "hard",
                "per": "user",
                "bogus": 1,
            }
        )
    problems = err.value.problems
    assert set(problems) == {
        "name",
        "amount_usd",
        "timezone",
        "anchor_day",
        "thresholds",
        "mode",
        "per",
        "bogus",
    }
    assert "Europe/Berlin" in problems["timezone"]


def test_rate_and_budget_fields_do_not_mix() -> None:
    with pytest.raises(InvalidFields) as err:
        check_limit({"name": "r", "kind": "rate"})
    assert "requests_per_minute" in err.value.problems
    with pytest.raises(InvalidFields) as err:
        check_limit({"name": "b", "kind": "budget", "amount_usd": "5", "requests_per_minute": 3})
    assert set(err.value.problems) == {"requests_per_minute"}
    with pytest.raises(InvalidFields) as err:
        check_limit(
            {"name": "x", "kind": "rate", "requests_per_minute": 5, "tier": "a", "tenant_id": "t"}
        )
    assert set(err.value.problems) == {"tier"}
    ok = check_limit({"name": "b", "kind": "budget", "amount_usd": "12.50", "per": "feature"})
    assert ok.amount_usd == Decimal("12.50") and ok.thresholds == [50, 80, 100]
    assert ok.mode == "block" and ok.timezone == "UTC" and ok.anchor_day == 1


def test_an_edit_keeps_the_fields_it_leaves_out() -> None:
    base = check_limit({"name": "r", "kind": "rate", "requests_per_minute": 5, "tier": "starter"})
    base.id = 4
    edited = check_limit({"requests_per_minute": 7}, base=base)
    assert (edited.id, edited.tier, edited.requests_per_minute) == (4, "starter", 7)


def _limit(id_: int, **kw: object) -> LimitDef:
    x = LimitDef(**{"name": f"l{id_}", "kind": "rate", **kw})  # type: ignore[arg-type]
    x.id = id_
    return x


def test_the_most_specific_limit_of_each_slot_applies() -> None:
    limits = [
        _limit(1, requests_per_minute=100),  # everyone
        _limit(2, tier="starter", requests_per_minute=10),
        _limit(3, tenant_id="vip", requests_per_minute=500),
        _limit(4, tier="starter", per="feature", subject="export", requests_per_minute=2),
        _limit(5, kind="budget", amount_usd=Decimal(50)),
        _limit(6, enabled=False, tenant_id="s1", requests_per_minute=1),
    ]
    tenants = [
        TenantConfig("s1", tier="starter"),
        TenantConfig("vip", tier="starter"),
        TenantConfig("cfg", tier="starter", rate_limit_rpm=20, monthly_budget_usd=Decimal(9)),
    ]
    r = Resolver(limits, tenants, [], NOW)
    refs = lambda t: {(e.ref, e.source) for e in r.for_tenant(t)}  # noqa: E731
    assert refs("s1") == {("L2", "tier"), ("L4", "tier"), ("L5", "all")}
    assert refs("vip") == {("L3", "tenant"), ("L4", "tier"), ("L5", "all")}
    assert refs("cfg") == {
        ("tenant:rate", "tenant-config"),
        ("L4", "tier"),
        ("tenant:budget", "tenant-config"),
    }
    assert refs("unknown") == {("L1", "all"), ("L5", "all")}


def test_approvals_raise_their_limit_for_their_tenant_until_they_expire() -> None:
    limits = [_limit(1, kind="budget", amount_usd=Decimal(10))]
    approval = check_approval(
        {"limit": "L1", "tenant_id": "t", "amount_usd": "5", "expires_at": "2026-12-04T00:00:00Z"},
        limits,
        now=NOW,
        granted_by="ops",
    )
    assert approval.granted_by == "ops"
    r = Resolver(limits, [], [approval], NOW)
    (eff,) = r.for_tenant("t")
    assert eff.raised("")[0] == Decimal(15)
    (other,) = r.for_tenant("u")
    assert other.raised("")[0] == Decimal(10)
    assert r.valid_until == approval.expires_at
    later = Resolver(limits, [], [approval], NOW + timedelta(days=2))
    assert later.for_tenant("t")[0].raised("")[0] == Decimal(10)


def test_an_approval_says_what_to_fix() -> None:
    with pytest.raises(InvalidFields) as err:
        check_approval(
            {"limit": "L9", "amount_usd": "x", "expires_at": "2020-01-01T00:00:00Z"},
            [],
            now=NOW,
            granted_by="ops",
        )
    assert set(err.value.problems) == {"limit", "tenant_id", "amount_usd", "expires_at"}
    with pytest.raises(InvalidFields) as err:
        check_approval(
            {
                "limit": "tenant:rate",
                "tenant_id": "t",
                "amount_usd": "3",
                "expires_at": "2027-01-01",
            },
            [],
            now=NOW,
            granted_by="ops",
        )
    assert set(err.value.problems) == {"requests_per_minute", "amount_usd"}
