"""What the limits package keeps in the ConfigStore: limit definitions, approvals (temporary
raises) and the soft-threshold notices already sent. ``LimitStore`` is the interface every
ConfigStore backend offers as ``config.limits``; values are checked by
``tenantscope.limits.definitions`` before they get here.

Reservations and rate windows are not here: they live in the limiter's ledger
(``limits/ledger.py``), and month-to-date spend is read from the event store.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tenantscope.alerts.notifications import Notification
from tenantscope.storage.base import SYSTEM, Actor

KINDS: tuple[str, ...] = ("rate", "budget")
# what a limit counts separately: one counter per tenant, or per tenant and feature / user /
# workspace
RATE_PER: tuple[str, ...] = ("tenant", "feature", "user")
BUDGET_PER: tuple[str, ...] = ("tenant", "workspace", "feature")
MODES: tuple[str, ...] = ("block", "soft")
BASES: tuple[str, ...] = ("provider_cost",)
DEFAULT_THRESHOLDS: tuple[int, ...] = (50, 80, 100)


@dataclass(slots=True)
class LimitDef:
    """One limit as stored. It applies to one tenant (``tenant_id``), to the tenants of a
    tier (``tier``), or to every tenant (neither). A tenant's own limit replaces its tier's,
    and a tier's the one for every tenant, in the same slot (kind, per, subject)."""

    name: str
    kind: str  # rate | budget
    per: str = "tenant"  # RATE_PER or BUDGET_PER
    # with per feature/user/workspace: only this one ("" each one separately)
    subject: str = ""
    tenant_id: str = ""
    tier: str = ""
    # rate
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    # budget
    amount_usd: Decimal | None = None
    basis: str = "provider_cost"
    timezone: str = "UTC"
    anchor_day: int = 1  # the day of the month a period starts (1-28)
    thresholds: list[int] = field(default_factory=lambda: list(DEFAULT_THRESHOLDS))
    mode: str = "block"  # block: a hard cap; soft: warnings only
    contact_ids: list[int] = field(default_factory=list)
    enabled: bool = True
    description: str = ""
    id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def ref(self) -> str:
        """How decisions and blocked records name the limit."""
        return f"L{self.id}"


@dataclass(slots=True)
class Approval:
    """An admin's temporary raise of one limit for one tenant (and subject): ``amount_usd``
    more budget, or ``requests_per_minute`` / ``tokens_per_minute`` more rate, until
    ``expires_at``."""

    limit_ref: str  # "L<id>", or "tenant:rate" / "tenant:budget" (the tenant config's)
    tenant_id: str
    expires_at: datetime
    subject: str = ""
    amount_usd: Decimal | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    reason: str = ""
    granted_by: str = ""
    starts_at: datetime | None = None
    revoked_at: datetime | None = None
    id: int | None = None
    created_at: datetime | None = None

    def active(self, at: datetime) -> bool:
        started = self.starts_at is None or self.starts_at <= at
        return started and self.revoked_at is None and at < self.expires_at


@dataclass(frozen=True, slots=True)
class Notice:
    """A soft threshold crossed: one per limit, tenant, subject, period and threshold."""

    limit_ref: str
    tenant_id: str
    subject: str
    period_start: datetime
    threshold: int
    at: datetime
    spend_usd: Decimal
    cap_usd: Decimal


class LimitStore(abc.ABC):
    @abc.abstractmethod
    def list_limits(self) -> list[LimitDef]: ...

    @abc.abstractmethod
    def get_limit(self, limit_id: int) -> LimitDef | None: ...

    @abc.abstractmethod
    def add_limit(self, limit: LimitDef, *, actor: Actor = SYSTEM) -> LimitDef: ...

    @abc.abstractmethod
    def replace_limit(
        self, limit_id: int, limit: LimitDef, *, actor: Actor = SYSTEM
    ) -> LimitDef | None:
        """None when there is no such limit."""

    @abc.abstractmethod
    def delete_limit(self, limit_id: int, *, actor: Actor = SYSTEM) -> bool:
        """Also revokes its approvals."""

    @abc.abstractmethod
    def list_approvals(self, *, active_at: datetime | None = None) -> list[Approval]: ...

    @abc.abstractmethod
    def add_approval(self, approval: Approval, *, actor: Actor = SYSTEM) -> Approval: ...

    @abc.abstractmethod
    def revoke_approval(self, approval_id: int, at: datetime, *, actor: Actor = SYSTEM) -> bool: ...

    @abc.abstractmethod
    def add_notice(self, notice: Notice, notifications: list[tuple[int, Notification]]) -> bool:
        """Store the notice and queue its notifications (contact id, notification) in the
        alerts' outbox, in one transaction; False (nothing queued) when this threshold was
        already noticed for that limit, tenant, subject and period."""

    @abc.abstractmethod
    def notices(
        self, *, since: datetime | None = None, tenant_id: str | None = None
    ) -> list[Notice]: ...
