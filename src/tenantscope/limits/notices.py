"""Soft thresholds: when a budget's settled spend reaches 50, 80, 100 % (its
``thresholds``), its contact points are told — once per threshold, limit, tenant, subject
and period. The notice and its notifications are stored in one transaction
(``LimitStore.add_notice``), so a restart neither repeats nor loses one; the alerts'
delivery thread sends them with its retries."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from urllib.parse import urlencode

from tenantscope.alerts.notifications import Notification
from tenantscope.limits.definitions import Effective
from tenantscope.storage.base import ConfigStore
from tenantscope.storage.limit_state import Notice

log = logging.getLogger("tenantscope.limits")

Crossing = tuple[str, str, str, datetime, int]


class Notifier:
    def __init__(self, config: ConfigStore, dashboard_url: str = "") -> None:
        self.config = config
        self.dashboard_url = dashboard_url.rstrip("/")
        self._done: set[Crossing] = set()
        self._loaded_since: datetime | None = None
        self.sent = 0

    def _load(self, period_start: datetime) -> None:
        """Notices already stored for periods from ``period_start`` (one read a period)."""
        if self._loaded_since is not None and self._loaded_since <= period_start:
            return
        for n in self.config.limits.notices(since=period_start):
            self._done.add((n.limit_ref, n.tenant_id, n.subject, n.period_start, n.threshold))
        self._loaded_since = period_start

    def __call__(
        self,
        eff: Effective,
        tenant: str,
        subject: str,
        period_start: datetime,
        threshold: int,
        spent: Decimal,
        cap: Decimal,
    ) -> None:
        key = (eff.ref, tenant, subject, period_start, threshold)
        if key in self._done:
            return
        self._load(period_start)
        if key in self._done:
            return
        at = datetime.now(period_start.tzinfo)
        pct = spent * 100 / cap
        notification = self._notification(eff, tenant, subject, period_start, threshold, pct, at)
        notice = Notice(eff.ref, tenant, subject, period_start, threshold, at, spent, cap)
        added = self.config.limits.add_notice(
            notice, [(c, notification(c, spent, cap)) for c in eff.contact_ids]
        )
        self._done.add(key)
        if added:
            self.sent += 1
            log.info(
                "budget %s of tenant %r reached %d %% (%s of %s USD)",
                eff.ref,
                tenant,
                threshold,
                spent,
                cap,
            )

    def _notification(
        self,
        eff: Effective,
        tenant: str,
        subject: str,
        period_start: datetime,
        threshold: int,
        pct: Decimal,
        at: datetime,
    ) -> Callable[[int, Decimal, Decimal], Notification]:
        of = "" if eff.per == "tenant" else f" ({eff.per} {subject or '(none)'})"
        block = eff.mode == "block" and threshold >= 100
        link = ""
        if self.dashboard_url:
            link = f"{self.dashboard_url}/limits?" + urlencode({"tenant": tenant})

        def make(contact_id: int, spent: Decimal, cap: Decimal) -> Notification:
            return Notification(
                id=f"limit:{eff.ref}:{tenant}:{subject}:{period_start:%Y%m%d%H%M}:{threshold}",
                event="firing" if threshold >= 100 else "warning",
                rule_id=0,
                rule_name=f"Budget {eff.name}{of} at {threshold} %",
                severity="critical" if threshold >= 100 else "warning",
                tenant_id=tenant,
                metric="budget_used",
                metric_label="budget used",
                value=f"{pct.quantize(Decimal('0.1'))} %",
                threshold=f">= {threshold} %",
                window="period",
                window_start=period_start,
                window_end=at,
                link=link,
                summary=(
                    f"Tenant {tenant}{of} has spent {spent.quantize(Decimal('0.01'))} of"
                    f" {cap} USD ({pct.quantize(Decimal('0.1'))} %) this period"
                    + ("; further calls are blocked" if block else "")
                ),
            )

        return make
