"""Breakdowns by provider, the tenant x feature comparison, the tenant filter of the tenants
and models lists and the tenant suggestions, over the known dataset in real stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from tenantscope.errors import BadRequest, NotFound
from tenantscope.query.params import TimeRange
from tenantscope.query.queries import Queries
from tenantscope.query.scope import Scope
from tenantscope.server.services import Services
from tests.query.seed import HOSTILE, NOW, seed

ALL = Scope.all()
WEEK = TimeRange(NOW - timedelta(days=7), NOW + timedelta(hours=1))
STRATEX = Scope.tenant("stratex-consulting")


@pytest.fixture
def q(services: Services) -> Iterator[Queries]:
    seed(services)
    yield services.queries


def test_breakdown_by_provider(q: Queries) -> None:
    bd = q.breakdown(ALL, WEEK, "provider")
    got = {r.key: (r.requests, r.cost_usd) for r in bd.items}
    assert got == {
        "anthropic": (2, Decimal("0.070")),
        "openai": (6, Decimal("0.033500000001")),
    }
    assert [r.key for r in bd.items] == ["anthropic", "openai"]  # costliest first
    # a tenant key sees its own providers only
    mine = q.breakdown(STRATEX, WEEK, "provider")
    assert [(r.key, r.cost_usd) for r in mine.items] == [("openai", Decimal("0.003"))]


def test_tenant_by_feature_pairs_with_exact_money_and_shares(q: Queries) -> None:
    cb = q.cross_breakdown(ALL, WEEK, "feature", "tenant")
    assert (cb.by, cb.group_by) == ("feature", "tenant")
    assert [g.key for g in cb.groups] == [
        "apex-legal",
        "stratex-consulting",
        "techstart-inc",
        HOSTILE,
    ]
    assert cb.keys == ["qa", "summary", "email"]  # costliest first over the groups
    pairs = {(i.group, i.key): i for i in cb.items}
    assert list(pairs) == [  # by group, then by key order
        ("apex-legal", "qa"),
        ("apex-legal", "summary"),
        ("stratex-consulting", "summary"),
        ("stratex-consulting", "email"),
        ("techstart-inc", "summary"),
        (HOSTILE, "summary"),
    ]
    qa = pairs[("apex-legal", "qa")]
    assert (qa.requests, qa.errors, qa.total_tokens) == (2, 1, 2200)
    assert qa.cost_usd == Decimal("0.070")
    assert qa.share_of_group_cost == 0.7
    email = pairs[("stratex-consulting", "email")]
    assert email.cost_usd == Decimal("0.002") and email.share_of_group_cost == 0.666667
    assert pairs[(HOSTILE, "summary")].cost_usd == Decimal("0.000000000001")
    assert cb.total_cost_usd == Decimal("0.103500000001")
    assert qa.share_of_cost == round(0.070 / 0.103500000001, 6)
    # JSON: exact decimal strings, as every endpoint
    js = cb.model_dump(mode="json")
    assert js["total_cost_usd"] == "0.103500000001"
    assert js["items"][-1]["cost_usd"] == "0.000000000001"


def test_comparison_limits_keep_group_totals_over_every_key(q: Queries) -> None:
    cb = q.cross_breakdown(ALL, WEEK, "feature", "tenant", limit=2, by_limit=1)
    assert [g.key for g in cb.groups] == ["apex-legal", "stratex-consulting"]
    assert cb.keys == ["qa"]  # over the two groups shown: qa 0.070 > summary 0.031
    assert [(i.group, i.key) for i in cb.items] == [("apex-legal", "qa")]
    # a group's totals cover its keys not shown
    assert cb.groups[0].cost_usd == Decimal("0.100") and cb.groups[0].requests == 4
    assert cb.groups[1].cost_usd == Decimal("0.003")


def test_comparison_other_dimensions_and_tenant_filter(q: Queries) -> None:
    cb = q.cross_breakdown(ALL, WEEK, "model", "feature", tenant_id="apex-legal")
    assert [(i.group, i.key, i.requests) for i in cb.items] == [
        ("qa", "claude-3-5-sonnet", 2),
        ("summary", "gpt-4o", 2),
    ]


def test_comparison_applies_the_scope(q: Queries) -> None:
    cb = q.cross_breakdown(STRATEX, WEEK, "feature", "tenant")
    assert [g.key for g in cb.groups] == ["stratex-consulting"]
    assert {i.group for i in cb.items} == {"stratex-consulting"}
    assert cb.total_cost_usd == Decimal("0.003")
    with pytest.raises(NotFound):
        q.cross_breakdown(STRATEX, WEEK, "feature", "tenant", tenant_id="apex-legal")


def test_comparison_validation_says_what_is_allowed(q: Queries) -> None:
    with pytest.raises(BadRequest, match="group_by must be another dimension than by"):
        q.cross_breakdown(ALL, WEEK, "feature", "feature")
    with pytest.raises(BadRequest, match="group_by must be one of model, provider"):
        q.cross_breakdown(ALL, WEEK, "feature", "planet")
    with pytest.raises(BadRequest, match="limit must be between 1 and 100"):
        q.cross_breakdown(ALL, WEEK, "feature", "tenant", limit=101)
    with pytest.raises(BadRequest, match="by_limit must be between 1 and 100"):
        q.cross_breakdown(ALL, WEEK, "feature", "tenant", by_limit=0)


def test_empty_comparison(q: Queries) -> None:
    before = TimeRange(NOW - timedelta(days=70), NOW - timedelta(days=60))
    cb = q.cross_breakdown(ALL, before, "feature", "tenant")
    assert (cb.groups, cb.keys, cb.items, cb.total_cost_usd) == ([], [], [], Decimal(0))


def test_tenants_and_models_filtered_to_one_tenant(q: Queries) -> None:
    page = q.tenants(ALL, WEEK, tenant_id="stratex-consulting")
    assert [t.tenant_id for t in page.items] == ["stratex-consulting"]
    assert page.items[0].cost_usd == Decimal("0.003")
    assert q.tenants(ALL, WEEK, tenant_id="").items == []
    models = q.models(ALL, WEEK, tenant_id="apex-legal")
    assert {m.model for m in models} == {"gpt-4o", "claude-3-5-sonnet"}


def test_breakdown_rows_beyond_the_api_limit_for_downloads(q: Queries) -> None:
    with pytest.raises(BadRequest):
        q.breakdowns(ALL, WEEK, ("model",), limit=1001)
    got = q.breakdowns(ALL, WEEK, ("model",), limit=5000, max_limit=100_000)
    assert len(got["model"].items) == 3


def test_tenant_suggestions_rank_ids_and_names(q: Queries, services: Services) -> None:
    services.config.set_tenant("zeta-idle", display_name="Strato Zeta")  # no traffic
    ids = [s.tenant_id for s in q.tenant_suggestions(ALL, "STRAT")]
    # id prefix and name prefix first (alphabetically), then substrings
    assert ids == ["stratex-consulting", "zeta-idle"]
    assert [s.tenant_id for s in q.tenant_suggestions(ALL, "legal")] == ["apex-legal"]
    named = q.tenant_suggestions(ALL, "apex legal")  # a display name
    assert [(s.tenant_id, s.display_name, s.tier) for s in named] == [
        ("apex-legal", "Apex Legal", "enterprise")
    ]
    assert [s.tenant_id for s in q.tenant_suggestions(ALL, "script")] == [HOSTILE]
    assert len(q.tenant_suggestions(ALL, "", limit=2)) == 2
    assert q.tenant_suggestions(ALL, "nothing-like-it") == []
    # exact beats prefix beats substring
    services.config.set_tenant("inc", display_name="")
    assert [s.tenant_id for s in q.tenant_suggestions(ALL, "inc")][:2] == ["inc", "techstart-inc"]
    with pytest.raises(BadRequest):
        q.tenant_suggestions(ALL, "a", limit=51)


def test_tenant_suggestions_apply_the_scope(q: Queries) -> None:
    assert [s.tenant_id for s in q.tenant_suggestions(STRATEX, "")] == ["stratex-consulting"]
    assert q.tenant_suggestions(STRATEX, "apex") == []
