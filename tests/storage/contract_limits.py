"""The ConfigStore's limits contract (``config.limits``): every backend must pass these.
A backend's test module subclasses ``LimitStoreContract`` and provides the same
``make_config_store`` fixture as for ``ConfigStoreContract``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tenantscope import errors
from tenantscope.alerts.contacts import check_contact
from tenantscope.alerts.notifications import Notification
from tenantscope.limits.definitions import check_limit
from tenantscope.storage.base import Actor, ConfigStore
from tenantscope.storage.limit_state import Approval, Notice
from tests.storage.contract_config import MakeStore

OPS = Actor("api", key_id="k1", name="ops bot", role="admin")
NOW = datetime(2026, 12, 3, 12, tzinfo=timezone.utc)


def _note(contact: int) -> Notification:
    return Notification(
        id="n1",
        event="warning",
        rule_id=0,
        rule_name="Budget b at 80 %",
        severity="warning",
        tenant_id="t",
        metric="budget_used",
        metric_label="budget used",
        value="81 %",
        threshold=">= 80 %",
        window="period",
        window_start=NOW,
        window_end=NOW,
        link="",
        summary="s",
    )


class LimitStoreContract:
    @pytest.fixture
    def config_store(self, make_config_store: MakeStore) -> Iterator[ConfigStore]:
        store = make_config_store()
        yield store
        store.close()

    def test_limits_round_trip_and_every_change_is_audited(self, config_store: ConfigStore) -> None:
        store = config_store.limits
        added = store.add_limit(
            check_limit(
                {
                    "name": "apex monthly",
                    "kind": "budget",
                    "tenant_id": "apex",
                    "amount_usd": "12.345678901",
                    "timezone": "Europe/Berlin",
                    "anchor_day": 15,
                    "thresholds": [50, 90],
                    "mode": "soft",
                }
            ),
            actor=OPS,
        )
        assert added.id is not None and added.ref == f"L{added.id}"
        got = store.get_limit(added.id)
        assert got is not None
        assert got.amount_usd == Decimal("12.345678901")  # exact, not a float
        assert (got.timezone, got.anchor_day, got.thresholds, got.mode) == (
            "Europe/Berlin",
            15,
            [50, 90],
            "soft",
        )
        changed = store.replace_limit(
            added.id, check_limit({"amount_usd": "20"}, base=got), actor=OPS
        )
        assert changed is not None and changed.amount_usd == Decimal(20)
        assert store.replace_limit(999, changed, actor=OPS) is None
        assert store.delete_limit(added.id, actor=OPS)
        assert not store.delete_limit(added.id, actor=OPS)
        assert store.list_limits() == []
        actions = {e.action for e in config_store.list_audit()}
        assert {"limit.create", "limit.update", "limit.delete"} <= actions
        entry = next(e for e in config_store.list_audit() if e.action == "limit.update")
        assert entry.actor.name == "ops bot"
        assert entry.before is not None and entry.before["amount_usd"] == "12.345678901"
        assert entry.after is not None and entry.after["amount_usd"] == "20"

    def test_a_limit_naming_a_missing_contact_point_is_refused(
        self, config_store: ConfigStore
    ) -> None:
        with pytest.raises(errors.InvalidFields) as err:
            config_store.limits.add_limit(
                check_limit({"name": "b", "kind": "budget", "amount_usd": "1", "contact_ids": [7]})
            )
        assert "contact_ids" in err.value.details["fields"]
        assert config_store.limits.list_limits() == []

    def test_approvals_expire_and_can_be_revoked(self, config_store: ConfigStore) -> None:
        store = config_store.limits
        a = store.add_approval(
            Approval(
                limit_ref="L1",
                tenant_id="apex",
                expires_at=NOW + timedelta(days=1),
                amount_usd=Decimal("5.5"),
                reason="quarter end",
                granted_by="ops bot",
                starts_at=NOW,
            ),
            actor=OPS,
        )
        assert a.id is not None
        assert [x.id for x in store.list_approvals(active_at=NOW)] == [a.id]
        assert store.list_approvals(active_at=NOW + timedelta(days=2)) == []
        assert store.revoke_approval(a.id, NOW + timedelta(hours=1), actor=OPS)
        assert store.list_approvals(active_at=NOW + timedelta(hours=2)) == []
        (kept,) = store.list_approvals()
        assert kept.revoked_at == NOW + timedelta(hours=1) and kept.amount_usd == Decimal("5.5")
        assert not store.revoke_approval(999, NOW, actor=OPS)
        actions = {e.action for e in config_store.list_audit()}
        assert {"limit_approval.create", "limit_approval.revoke"} <= actions

    def test_a_notice_is_stored_and_queued_once(self, config_store: ConfigStore) -> None:
        contact = config_store.alerts.add_contact(
            check_contact("hook", "webhook", {"url": "http://x/"})
        )
        assert contact.id is not None
        notice = Notice("L1", "t", "", NOW, 80, NOW, Decimal("0.81"), Decimal(1))
        assert config_store.limits.add_notice(notice, [(contact.id, _note(contact.id))])
        assert not config_store.limits.add_notice(notice, [(contact.id, _note(contact.id))])
        assert config_store.alerts.pending_notifications() == 1
        (stored,) = config_store.limits.notices(since=NOW)
        assert stored.spend_usd == Decimal("0.81") and stored.threshold == 80
        assert config_store.limits.notices(since=NOW + timedelta(days=40)) == []
