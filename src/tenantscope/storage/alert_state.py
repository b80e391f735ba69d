"""What the alerts package keeps in the ConfigStore: rules, contact points, each rule
instance's state, the history of state changes, the notifications still to deliver, and
the evaluator's lease. ``AlertStore`` is the interface every ConfigStore backend offers as
``config.alerts``; the values are checked by ``tenantscope.alerts`` before they get here.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from tenantscope.alerts.contacts import ContactPoint
from tenantscope.storage.base import SYSTEM, Actor

RULE_STATES: tuple[str, ...] = ("ok", "pending", "firing", "warning", "no_data")


@dataclass(slots=True)
class AlertRule:
    """One alert rule as stored (checked by ``alerts.rules.check_rule``)."""

    name: str
    metric: str
    comparator: str
    threshold: Decimal
    scope: str = "span"
    warning: Decimal | None = None
    window_s: int = 300
    interval_s: int = 60
    min_requests: int = 1
    pending_s: int = 0
    keep_firing_s: int = 0
    severity: str = "critical"
    # which tenants: these ids (empty: all), of this tier ("" any); per_tenant: one state
    # per tenant instead of one figure over all of them
    tenant_ids: list[str] = field(default_factory=list)
    tier: str = ""
    per_tenant: bool = False
    filters: dict[str, str] = field(default_factory=dict)
    contact_ids: list[int] = field(default_factory=list)
    enabled: bool = True
    silenced_until: datetime | None = None
    description: str = ""
    # burn_rate rules: the SLO whose error budget burns, and the short window that must
    # burn too (the multiwindow rule: both windows over the threshold)
    slo_id: int | None = None
    short_window_s: int = 0
    id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(slots=True)
class Slo:
    """A service level objective per tenant: ``objective`` percent of counted LLM calls
    are good over ``period_days`` — faster than the latency target (``target_ms``, or
    each tenant's SLA target when None), or not failed (indicator ``errors``)."""

    name: str
    indicator: str  # latency or errors
    objective: Decimal  # percent, e.g. 99.5
    target_ms: int | None = None
    period_days: int = 30
    tenant_ids: list[str] = field(default_factory=list)
    tier: str = ""
    id: int | None = None
    created_at: datetime | None = None


@dataclass(slots=True)
class AlertInstance:
    """The state of one rule for one tenant (``key`` the tenant id), or for the rule's one
    figure over all its tenants (``key`` ""; a rule is either per tenant or not, so the
    empty tenant id cannot be mistaken for it)."""

    rule_id: int
    key: str
    state: str = "ok"
    since: datetime | None = None  # when the state began
    pending_since: datetime | None = None
    last_breach_at: datetime | None = None
    value: Decimal | None = None  # the last figure (None: no data)
    requests: int = 0  # requests in the last window
    evaluated_at: datetime | None = None
    seq: int = 0  # state changes notified so far (notification ids)
    silenced_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    rule_id: int
    key: str
    at: datetime
    from_state: str
    to_state: str
    value: Decimal | None
    note: str = ""
    id: int | None = None


@dataclass(slots=True)
class OutboxItem:
    """A notification to deliver to one contact point. Written in the transaction that
    stores the state change, so a restart neither loses nor repeats it."""

    rule_id: int
    key: str
    contact_id: int
    payload: dict[str, Any]  # the Notification as JSON
    created_at: datetime
    next_attempt_at: datetime
    attempts: int = 0
    sent_at: datetime | None = None
    failed_at: datetime | None = None
    last_error: str = ""
    id: int | None = None


class AlertStore(abc.ABC):
    # -- rules (every change audited, like the rest of the configuration) -------------
    @abc.abstractmethod
    def list_rules(self) -> list[AlertRule]: ...

    @abc.abstractmethod
    def get_rule(self, rule_id: int) -> AlertRule | None: ...

    @abc.abstractmethod
    def add_rule(self, rule: AlertRule, *, actor: Actor = SYSTEM) -> AlertRule: ...

    @abc.abstractmethod
    def replace_rule(
        self, rule_id: int, rule: AlertRule, *, actor: Actor = SYSTEM
    ) -> AlertRule | None:
        """Give rule ``rule_id`` these values (its states start over when what it
        measures changed); None when there is no such rule."""

    @abc.abstractmethod
    def delete_rule(self, rule_id: int, *, actor: Actor = SYSTEM) -> bool:
        """Remove the rule, its states and undelivered notifications (its history stays)."""

    @abc.abstractmethod
    def silence(
        self, rule_id: int, key: str | None, until: datetime | None, *, actor: Actor = SYSTEM
    ) -> bool:
        """Silence the rule (``key`` None) or one of its instances until ``until`` (None
        lifts it): it is still evaluated, its notifications are not sent."""

    # -- SLOs ------------------------------------------------------------------------------
    @abc.abstractmethod
    def list_slos(self) -> list[Slo]: ...

    @abc.abstractmethod
    def get_slo(self, slo_id: int) -> Slo | None: ...

    @abc.abstractmethod
    def add_slo(
        self, slo: Slo, rules: Sequence[AlertRule] = (), *, actor: Actor = SYSTEM
    ) -> tuple[Slo, list[AlertRule]]:
        """Store the SLO and its burn-rate rules (``slo_id`` set here) together."""

    @abc.abstractmethod
    def delete_slo(self, slo_id: int, *, actor: Actor = SYSTEM) -> bool:
        """Remove the SLO and its burn-rate rules."""

    # -- contact points -------------------------------------------------------------------
    @abc.abstractmethod
    def list_contacts(self) -> list[ContactPoint]: ...

    @abc.abstractmethod
    def get_contact(self, contact_id: int) -> ContactPoint | None: ...

    @abc.abstractmethod
    def add_contact(self, contact: ContactPoint, *, actor: Actor = SYSTEM) -> ContactPoint: ...

    @abc.abstractmethod
    def replace_contact(
        self, contact_id: int, contact: ContactPoint, *, actor: Actor = SYSTEM
    ) -> ContactPoint | None: ...

    @abc.abstractmethod
    def delete_contact(self, contact_id: int, *, actor: Actor = SYSTEM) -> bool:
        """Refused (``errors.Conflict`` naming them) while a rule sends to it."""

    @abc.abstractmethod
    def set_contact_status(
        self, contact_id: int, status: str, error: str, at: datetime
    ) -> None: ...

    # -- evaluation -----------------------------------------------------------------------
    @abc.abstractmethod
    def instances(self, rule_id: int | None = None) -> list[AlertInstance]: ...

    @abc.abstractmethod
    def save_round(
        self,
        rule_id: int,
        instances: list[AlertInstance],
        history: list[HistoryEntry],
        outbox: list[OutboxItem],
        *,
        remove: list[str] = (),  # type: ignore[assignment]
        holder: str | None = None,
        at: datetime | None = None,
    ) -> bool:
        """One evaluation of one rule, in one transaction: its instances' new states,
        their history and the notifications to send; ``remove``: instance keys no longer
        evaluated (a tenant that left the rule's selection). With ``holder``, stored only
        while that holder has the evaluator lease (False otherwise, nothing stored): an
        evaluator that lost its lease mid-round cannot notify twice. ``at``: the time the
        round evaluated (the lease must still hold then; default now)."""

    @abc.abstractmethod
    def history(
        self,
        *,
        rule_id: int | None = None,
        key: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[HistoryEntry]:
        """State changes, newest first."""

    @abc.abstractmethod
    def due_notifications(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        """Notifications not yet sent nor given up whose next attempt is due, oldest first."""

    @abc.abstractmethod
    def pending_notifications(self) -> int:
        """How many notifications are waiting (due or not)."""

    @abc.abstractmethod
    def notification_sent(self, item_id: int, at: datetime) -> None: ...

    @abc.abstractmethod
    def notification_failed(
        self, item_id: int, error: str, next_attempt_at: datetime | None, at: datetime
    ) -> None:
        """A failed attempt: retried at ``next_attempt_at``, or given up (None)."""

    @abc.abstractmethod
    def acquire_lease(self, name: str, holder: str, ttl_s: float, now: datetime) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``now + ttl_s``; False
        while another holder's lease has not expired."""

    @abc.abstractmethod
    def release_lease(self, name: str, holder: str) -> None: ...

    @abc.abstractmethod
    def lease_holder(self, name: str, now: datetime) -> str | None: ...
