"""The ConfigStore's audit log contract: every backend must pass these tests.

A backend's test module subclasses ``AuditLogContract`` (named ``Test...``) and provides the
same ``make_config_store`` fixture as for ``ConfigStoreContract``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tenantscope import errors
from tenantscope.storage.base import CLI, SYSTEM, Actor, ConfigStore
from tests.storage.contract_config import MakeStore, _key, _override

ADMIN_FORM = Actor("session", key_id="k-admin", name="ops laptop", role="admin")
API = Actor("api", key_id="k-api", name="deploy bot", role="admin")


class AuditLogContract:
    @pytest.fixture
    def config_store(self, make_config_store: MakeStore) -> Iterator[ConfigStore]:
        store = make_config_store()
        yield store
        store.close()

    def test_a_new_store_has_an_empty_log(self, config_store: ConfigStore) -> None:
        assert config_store.list_audit() == []

    def test_tenant_changes_are_recorded_with_before_and_after(
        self, config_store: ConfigStore
    ) -> None:
        before = datetime.now(timezone.utc) - timedelta(seconds=5)
        config_store.set_tenant("apex", actor=CLI, display_name="Apex", tier="gold")
        config_store.set_tenant("apex", actor=ADMIN_FORM, monthly_budget_usd="99.50")
        config_store.delete_tenant("apex", actor=API)
        deleted, updated, created = config_store.list_audit()
        assert [e.action for e in (created, updated, deleted)] == [
            "tenant.create",
            "tenant.update",
            "tenant.delete",
        ]
        assert {e.target for e in (created, updated, deleted)} == {"apex"}
        assert created.actor == CLI and updated.actor == ADMIN_FORM and deleted.actor == API
        assert created.before is None
        assert created.after == {
            "display_name": "Apex",
            "tier": "gold",
            "sla_p95_ms": None,
            "rate_limit_rpm": None,
            "monthly_budget_usd": None,
        }
        assert updated.before == created.after
        assert updated.after is not None and updated.after["monthly_budget_usd"] == "99.50"
        assert deleted.before == updated.after and deleted.after is None
        for e in (created, updated, deleted):
            assert e.at.utcoffset() == timedelta(0)
            assert before <= e.at <= datetime.now(timezone.utc)
        assert created.id < updated.id < deleted.id

    def test_price_override_changes_are_recorded(self, config_store: ConfigStore) -> None:
        added = config_store.add_price_override(_override("gpt-4o", 0), actor=CLI)
        assert added.id is not None
        new = config_store.replace_price_override(
            added.id, _override("gpt-4o", 0, input_mtok=Decimal("2")), actor=ADMIN_FORM
        )
        assert new is not None and new.id == added.id and new.input_mtok == Decimal("2")
        assert config_store.list_price_overrides() == [new]
        assert config_store.delete_price_override(new.id, actor=ADMIN_FORM) is True
        removed, replaced, add = config_store.list_audit()
        assert [e.action for e in (add, replaced, removed)] == [
            "price_override.add",
            "price_override.replace",
            "price_override.delete",
        ]
        assert {e.target for e in (add, replaced, removed)} == {"gpt-4o"}
        assert add.before is None and add.after is not None
        assert add.after["input_mtok"] == "2.5" and add.after["provider"] == "openai"
        assert add.after["effective_from"] == "2026-01-01T00:00:00Z"
        assert replaced.before == add.after
        assert replaced.after is not None and replaced.after["input_mtok"] == "2"
        assert removed.before == replaced.after and removed.after is None

    def test_replacing_a_missing_override_changes_nothing(self, config_store: ConfigStore) -> None:
        assert config_store.replace_price_override(12345, _override("m", 0)) is None
        assert config_store.list_price_overrides() == []
        assert config_store.delete_price_override(12345) is False
        assert config_store.list_audit() == []

    def test_a_refused_replacement_keeps_the_old_override(self, config_store: ConfigStore) -> None:
        old = config_store.add_price_override(_override("m", 0))
        assert old.id is not None
        with pytest.raises(errors.ValidationFailed):
            config_store.replace_price_override(old.id, _override("m", 0, output_mtok=2.5))
        assert config_store.list_price_overrides() == [old]
        assert [e.action for e in config_store.list_audit()] == ["price_override.add"]

    def test_key_changes_are_recorded_without_the_secret(self, config_store: ConfigStore) -> None:
        config_store.add_api_key(_key("admin-1"), actor=CLI)
        config_store.add_api_key(_key("tenant-1", "tenant", "acme"), actor=API)
        assert config_store.revoke_api_key("tenant-1", actor=ADMIN_FORM) is True
        revoked, created, first = config_store.list_audit()
        assert (first.action, first.target, first.actor) == ("key.create", "admin-1", CLI)
        assert (created.action, created.target) == ("key.create", "tenant-1")
        assert created.after is not None
        assert created.after["role"] == "tenant" and created.after["tenant_id"] == "acme"
        assert created.after["revoked_at"] is None
        assert (revoked.action, revoked.target, revoked.actor) == (
            "key.revoke",
            "tenant-1",
            ADMIN_FORM,
        )
        assert revoked.before is not None and revoked.before["revoked_at"] is None
        assert revoked.after is not None and revoked.after["revoked_at"] is not None
        everything = json.dumps([[e.before, e.after] for e in (revoked, created, first)])
        assert "h" * 64 not in everything and "secret" not in everything

    def test_refused_changes_write_no_entry(self, config_store: ConfigStore) -> None:
        with pytest.raises(errors.ValidationFailed):
            config_store.set_tenant("t", sla_p95_ms=0)
        with pytest.raises(errors.ValidationFailed):
            config_store.add_price_override(_override("", 0))
        with pytest.raises(errors.ValidationFailed):
            config_store.add_api_key(_key("t-1", "tenant"))  # no tenant
        config_store.add_api_key(_key("admin-1"))
        with pytest.raises(errors.Conflict):
            config_store.revoke_api_key("admin-1")
        assert config_store.revoke_api_key("nobody") is False
        assert config_store.delete_tenant("nobody") is False
        assert [e.action for e in config_store.list_audit()] == ["key.create"]

    def test_changes_without_an_actor_are_recorded_as_system(
        self, config_store: ConfigStore
    ) -> None:
        config_store.set_tenant("t", tier="x")
        (entry,) = config_store.list_audit()
        assert entry.actor == SYSTEM

    def test_filters_and_paging(self, config_store: ConfigStore) -> None:
        for i in range(7):
            config_store.set_tenant(f"t{i % 3}", tier=str(i))
        config_store.add_price_override(_override("m", 0))
        everything = config_store.list_audit()
        assert len(everything) == 8
        assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)
        assert [e.target for e in config_store.list_audit(target="t1")] == ["t1", "t1"]
        assert [e.action for e in config_store.list_audit(action="tenant.create")] == [
            "tenant.create"
        ] * 3
        assert config_store.list_audit(action="price_override.add", target="t1") == []
        first = config_store.list_audit(limit=3)
        rest = config_store.list_audit(limit=10, before_id=first[-1].id)
        assert first + rest == everything
        assert config_store.list_audit(since=datetime.now(timezone.utc) + timedelta(hours=1)) == []
        since = everything[2].at
        assert {e.id for e in everything if e.at >= since} <= {
            e.id for e in config_store.list_audit(since=since)
        }

    def test_entries_are_seen_by_another_handle(self, make_config_store: MakeStore) -> None:
        cli, server = make_config_store(), make_config_store()
        try:
            cli.set_tenant("t", actor=CLI, tier="x")
            (entry,) = server.list_audit()
            assert entry.actor == CLI and entry.target == "t"
        finally:
            cli.close()
            server.close()
