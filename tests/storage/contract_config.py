"""The ConfigStore contract: every backend must pass these tests.

A backend's test module subclasses ``ConfigStoreContract`` (named ``Test...``) and provides a
``make_config_store`` fixture: a callable returning a *new handle on the same store* (a new
engine, as a second process would open it), which starts empty for each test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from tenantscope import errors
from tenantscope.storage.base import ApiKey, ConfigStore, PriceOverride, TenantConfig

MakeStore = Callable[[], ConfigStore]
D0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _key(key_id: str, role: str = "admin", tenant_id: str | None = None) -> ApiKey:
    return ApiKey(key_id=key_id, role=role, tenant_id=tenant_id, secret_hash="h" * 64)


def _override(model: str, days: int, **changes: Any) -> PriceOverride:
    base = PriceOverride(
        model=model,
        effective_from=D0 + timedelta(days=days),
        provider="openai",
        input_mtok=Decimal("2.5"),
        output_mtok=Decimal("10"),
        cache_read_mtok=Decimal("1.25"),
        cache_write_mtok=None,
        note=f"negotiated {model} {days}",
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


class ConfigStoreContract:
    @pytest.fixture
    def config_store(self, make_config_store: MakeStore) -> Iterator[ConfigStore]:
        store = make_config_store()
        yield store
        store.close()

    # -- tenants -----------------------------------------------------------------------

    def test_unknown_tenant_is_none(self, config_store: ConfigStore) -> None:
        assert config_store.get_tenant("nobody") is None
        assert config_store.list_tenants() == []
        assert config_store.get_tenants(["nobody"]) == {}

    def test_create_with_defaults(self, config_store: ConfigStore) -> None:
        before = datetime.now(timezone.utc)
        t = config_store.set_tenant("techstart-inc")
        assert t.tenant_id == "techstart-inc"
        assert (t.display_name, t.tier, t.sla_p95_ms, t.rate_limit_rpm, t.monthly_budget_usd) == (
            "",
            "",
            None,
            None,
            None,
        )
        assert t.created_at is not None and t.updated_at is not None
        assert t.created_at.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=5) <= t.created_at <= datetime.now(timezone.utc)
        assert config_store.get_tenant("techstart-inc") == t

    def test_set_all_fields_then_update_some(self, config_store: ConfigStore) -> None:
        created = config_store.set_tenant(
            "apex-legal",
            display_name="Apex Legal",
            tier="enterprise",
            sla_p95_ms=2000,
            rate_limit_rpm=600,
            monthly_budget_usd="2500.75",
        )
        assert created.monthly_budget_usd == Decimal("2500.75")
        updated = config_store.set_tenant("apex-legal", tier="professional", sla_p95_ms=3000)
        assert updated.display_name == "Apex Legal"
        assert updated.tier == "professional"
        assert updated.sla_p95_ms == 3000
        assert updated.rate_limit_rpm == 600
        assert updated.monthly_budget_usd == Decimal("2500.75")
        assert updated.created_at == created.created_at
        assert updated.updated_at is not None and created.updated_at is not None
        assert updated.updated_at >= created.updated_at
        assert config_store.get_tenant("apex-legal") == updated

    def test_none_clears_a_field(self, config_store: ConfigStore) -> None:
        config_store.set_tenant(
            "t", display_name="T", sla_p95_ms=100, rate_limit_rpm=5, monthly_budget_usd=10
        )
        cleared = config_store.set_tenant(
            "t", display_name=None, sla_p95_ms=None, rate_limit_rpm=None, monthly_budget_usd=None
        )
        assert (cleared.display_name, cleared.sla_p95_ms, cleared.rate_limit_rpm) == (
            "",
            None,
            None,
        )
        assert cleared.monthly_budget_usd is None
        assert config_store.get_tenant("t") == cleared

    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("0", Decimal("0")),
            (0, Decimal("0")),
            (1500, Decimal("1500")),
            ("0.000000000001", Decimal("0.000000000001")),
            (Decimal("99999999.123456789012"), Decimal("99999999.123456789012")),
            (" 12.50 ", Decimal("12.50")),
        ],
    )
    def test_budget_is_exact(
        self, config_store: ConfigStore, given: Any, expected: Decimal
    ) -> None:
        assert config_store.set_tenant("t", monthly_budget_usd=given).monthly_budget_usd == expected
        stored = config_store.get_tenant("t")
        assert stored is not None and stored.monthly_budget_usd == expected

    def test_awkward_tenant_ids(self, config_store: ConfigStore) -> None:
        ids = ["<script>alert(1)</script>", 'O\'Brien "&" Co', "租户 🚀", "x" * 1024, "' OR 1=1 --"]
        for tid in ids:
            config_store.set_tenant(tid, display_name=tid[:200])
        for tid in ids:
            got = config_store.get_tenant(tid)
            assert got is not None and got.display_name == tid[:200]
        assert config_store.get_tenant("x") is None

    def test_list_is_ordered_by_tenant_id(self, config_store: ConfigStore) -> None:
        for tid in ["stratex-consulting", "apex-legal", "techstart-inc", "beta"]:
            config_store.set_tenant(tid)
        assert [t.tenant_id for t in config_store.list_tenants()] == [
            "apex-legal",
            "beta",
            "stratex-consulting",
            "techstart-inc",
        ]

    def test_get_tenants_returns_the_known_ones(self, config_store: ConfigStore) -> None:
        for tid in ["a", "b", "c"]:
            config_store.set_tenant(tid, tier=tid.upper())
        asked = ["c", "zz", "a"] + [f"unknown-{i}" for i in range(1200)] + ["a"]
        got = config_store.get_tenants(asked)
        assert set(got) == {"a", "c"}
        assert got["c"].tier == "C"
        assert isinstance(got["a"], TenantConfig)
        assert config_store.get_tenants([]) == {}

    def test_delete_tenant(self, config_store: ConfigStore) -> None:
        config_store.set_tenant("gone", tier="x")
        assert config_store.delete_tenant("gone") is True
        assert config_store.get_tenant("gone") is None
        assert config_store.delete_tenant("gone") is False

    # -- validation --------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            ({"colour": "red"}, "colour"),
            ({"created_at": D0}, "created_at"),
            ({"sla_p95_ms": 0}, "sla_p95_ms"),
            ({"sla_p95_ms": -5}, "sla_p95_ms"),
            ({"sla_p95_ms": 1.5}, "sla_p95_ms"),
            ({"sla_p95_ms": True}, "sla_p95_ms"),
            ({"sla_p95_ms": "fast"}, "sla_p95_ms"),
            ({"sla_p95_ms": 2**40}, "sla_p95_ms"),
            ({"rate_limit_rpm": 0}, "rate_limit_rpm"),
            ({"rate_limit_rpm": "-1"}, "rate_limit_rpm"),
            ({"monthly_budget_usd": 10.5}, "monthly_budget_usd"),
            ({"monthly_budget_usd": float("nan")}, "monthly_budget_usd"),
            ({"monthly_budget_usd": Decimal("NaN")}, "monthly_budget_usd"),
            ({"monthly_budget_usd": "Infinity"}, "monthly_budget_usd"),
            ({"monthly_budget_usd": Decimal("-0.01")}, "monthly_budget_usd"),
            ({"monthly_budget_usd": "ten dollars"}, "monthly_budget_usd"),
            ({"monthly_budget_usd": "1e400"}, "monthly_budget_usd"),
            ({"display_name": "x" * 201}, "display_name"),
            ({"display_name": 42}, "display_name"),
            ({"tier": "t" * 201}, "tier"),
            ({"tier": ["gold"]}, "tier"),
        ],
    )
    def test_invalid_fields_are_refused_and_nothing_is_stored(
        self, config_store: ConfigStore, fields: dict[str, Any], field: str
    ) -> None:
        with pytest.raises(errors.ValidationFailed) as info:
            config_store.set_tenant("victim", **{"tier": "ok", **fields})
        assert field in info.value.message
        assert info.value.details == {"field": field}
        assert config_store.get_tenant("victim") is None

    def test_a_refused_update_leaves_the_tenant_unchanged(self, config_store: ConfigStore) -> None:
        before = config_store.set_tenant("t", tier="gold", sla_p95_ms=100)
        with pytest.raises(errors.ValidationFailed):
            config_store.set_tenant("t", tier="silver", sla_p95_ms=-1)
        assert config_store.get_tenant("t") == before

    @pytest.mark.parametrize("tenant_id", ["", "x" * 1025])
    def test_invalid_tenant_ids(self, config_store: ConfigStore, tenant_id: str) -> None:
        with pytest.raises(errors.ValidationFailed):
            config_store.set_tenant(tenant_id, tier="x")
        assert config_store.list_tenants() == []

    def test_labels_up_to_200_characters(self, config_store: ConfigStore) -> None:
        t = config_store.set_tenant("t", display_name="é" * 200, tier="t" * 200)
        assert t.display_name == "é" * 200 and t.tier == "t" * 200

    # -- price overrides ---------------------------------------------------------------

    def test_overrides_round_trip(self, config_store: ConfigStore) -> None:
        given = _override("gpt-4o", 10, extra={"contract": "MSA-7", "tiers": [1, 2]})
        added = config_store.add_price_override(given)
        assert added.id is not None
        assert added.created_at is not None and added.created_at.utcoffset() == timedelta(0)
        for name in (
            "model",
            "provider",
            "effective_from",
            "input_mtok",
            "output_mtok",
            "cache_read_mtok",
            "cache_write_mtok",
            "note",
            "extra",
        ):
            assert getattr(added, name) == getattr(given, name), name
        assert config_store.list_price_overrides() == [added]

    def test_override_times_keep_their_instant(self, config_store: ConfigStore) -> None:
        paris = timezone(timedelta(hours=1))
        added = config_store.add_price_override(
            _override("m", 0, effective_from=datetime(2026, 2, 1, 1, 0, tzinfo=paris))
        )
        assert added.effective_from == datetime(2026, 2, 1, 0, 0, tzinfo=timezone.utc)
        assert added.effective_from.utcoffset() == timedelta(0)

    def test_overrides_ordered_by_model_then_effective_from(
        self, config_store: ConfigStore
    ) -> None:
        for model, days in [("gpt-4o", 30), ("claude-sonnet-4", 5), ("gpt-4o", 1), ("gpt-4o", 15)]:
            config_store.add_price_override(_override(model, days))
        listed = config_store.list_price_overrides()
        assert [(o.model, o.effective_from) for o in listed] == [
            ("claude-sonnet-4", D0 + timedelta(days=5)),
            ("gpt-4o", D0 + timedelta(days=1)),
            ("gpt-4o", D0 + timedelta(days=15)),
            ("gpt-4o", D0 + timedelta(days=30)),
        ]
        only = config_store.list_price_overrides("gpt-4o")
        assert [o.effective_from.day for o in only] == [2, 16, 31]
        assert config_store.list_price_overrides("unknown-model") == []

    def test_override_prices_are_exact(self, config_store: ConfigStore) -> None:
        added = config_store.add_price_override(
            _override("m", 0, input_mtok=Decimal("0.000000000001"), output_mtok=Decimal("123.45"))
        )
        got = config_store.list_price_overrides("m")[0]
        assert got.input_mtok == Decimal("0.000000000001") == added.input_mtok
        assert got.output_mtok == Decimal("123.45")
        assert got.cache_write_mtok is None

    def test_delete_override(self, config_store: ConfigStore) -> None:
        a = config_store.add_price_override(_override("m", 0))
        b = config_store.add_price_override(_override("m", 1))
        assert a.id is not None and b.id is not None and a.id != b.id
        assert config_store.delete_price_override(a.id) is True
        assert [o.id for o in config_store.list_price_overrides()] == [b.id]
        assert config_store.delete_price_override(a.id) is False

    @pytest.mark.parametrize(
        "changes",
        [
            {"model": ""},
            {"model": "m" * 201},
            {"input_mtok": Decimal("-1")},
            {"output_mtok": 2.5},
            {"cache_read_mtok": Decimal("Infinity")},
            {"effective_from": "2026-01-01"},
        ],
    )
    def test_invalid_overrides_are_refused(
        self, config_store: ConfigStore, changes: dict[str, Any]
    ) -> None:
        bad = _override("m", 0)
        for key, value in changes.items():
            setattr(bad, key, value)
        with pytest.raises(errors.ValidationFailed):
            config_store.add_price_override(bad)
        assert config_store.list_price_overrides() == []

    # -- API keys ----------------------------------------------------------------------

    def test_keys_round_trip_and_revoke(self, config_store: ConfigStore) -> None:
        config_store.add_api_key(_key("admin-1"))
        config_store.add_api_key(_key("reader-1", "reader"))
        assert [k.key_id for k in config_store.list_api_keys() if k.active] == [
            "admin-1",
            "reader-1",
        ]
        assert config_store.revoke_api_key("reader-1") is True
        assert config_store.revoke_api_key("reader-1") is False  # once
        assert config_store.revoke_api_key("nobody") is False
        key = config_store.get_api_key("reader-1")
        assert key is not None and not key.active

    def test_the_last_active_admin_key_cannot_be_revoked(self, config_store: ConfigStore) -> None:
        config_store.add_api_key(_key("admin-1"))
        config_store.add_api_key(_key("tenant-1", "tenant", "acme"))
        with pytest.raises(errors.Conflict, match="last active admin key"):
            config_store.revoke_api_key("admin-1")
        key = config_store.get_api_key("admin-1")
        assert key is not None and key.active  # nothing changed
        # with a second admin key, either may go, but not both
        config_store.add_api_key(_key("admin-2"))
        assert config_store.revoke_api_key("admin-1") is True
        with pytest.raises(errors.Conflict):
            config_store.revoke_api_key("admin-2")
        # other roles never need a spare
        assert config_store.revoke_api_key("tenant-1") is True

    def test_two_handles_cannot_revoke_the_last_two_admin_keys(
        self, make_config_store: MakeStore
    ) -> None:
        stores = [make_config_store(), make_config_store()]

        def revoke(
            store: ConfigStore, key_id: str, start: threading.Barrier, out: list[str]
        ) -> None:
            start.wait()
            try:
                out.append(str(store.revoke_api_key(key_id)))
            except errors.Conflict:
                out.append("refused")

        try:
            for round_ in range(5):
                ids = [f"admin-{round_}-a", f"admin-{round_}-b"]
                for key_id in ids:
                    stores[0].add_api_key(_key(key_id))
                for other in stores[0].list_api_keys():
                    if other.active and other.key_id not in ids:
                        stores[0].revoke_api_key(other.key_id)
                results: list[str] = []
                start = threading.Barrier(2)
                threads = [
                    threading.Thread(target=revoke, args=(stores[k], ids[k], start, results))
                    for k in (0, 1)
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(30)
                assert sorted(results) == ["True", "refused"], results
                active = [k for k in stores[1].list_api_keys() if k.active and k.role == "admin"]
                assert len(active) == 1
        finally:
            for s in stores:
                s.close()

    # -- several handles ---------------------------------------------------------------

    def test_two_handles_see_each_others_writes(self, make_config_store: MakeStore) -> None:
        server, cli = make_config_store(), make_config_store()
        try:
            server.set_tenant("apex-legal", tier="enterprise")
            seen = cli.get_tenant("apex-legal")
            assert seen is not None and seen.tier == "enterprise"
            cli.set_tenant("apex-legal", sla_p95_ms=2000)
            again = server.get_tenant("apex-legal")
            assert again is not None and again.sla_p95_ms == 2000
            added = cli.add_price_override(_override("gpt-4o", 0))
            assert server.list_price_overrides() == [added]
        finally:
            server.close()
            cli.close()

    def test_concurrent_writers_on_two_handles(self, make_config_store: MakeStore) -> None:
        stores = [make_config_store(), make_config_store()]
        failures: list[str] = []

        def work(k: int) -> None:
            store = stores[k % 2]
            try:
                for i in range(15):
                    store.set_tenant(f"t-{k}-{i}", tier=str(k))
                    store.set_tenant("shared", rate_limit_rpm=k * 100 + i + 1)
            except Exception as exc:  # pragma: no cover - reported below
                failures.append(repr(exc))

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        try:
            assert not failures, failures[:3]
            listed = stores[0].list_tenants()
            assert len(listed) == 4 * 15 + 1
        finally:
            for s in stores:
                s.close()

    def test_data_survives_reopen(self, make_config_store: MakeStore) -> None:
        first = make_config_store()
        first.set_tenant("t", monthly_budget_usd="12.345")
        first.add_price_override(_override("m", 3))
        first.close()
        second = make_config_store()
        try:
            t = second.get_tenant("t")
            assert t is not None and t.monthly_budget_usd == Decimal("12.345")
            assert len(second.list_price_overrides()) == 1
        finally:
            second.close()

    def test_ping(self, config_store: ConfigStore) -> None:
        config_store.ping()
