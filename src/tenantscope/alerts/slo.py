"""SLOs per tenant with error budgets and burn rates (the SRE workbook's multiwindow,
multi-burn-rate alerts).

An SLO says ``objective`` percent of a tenant's counted LLM calls are good over
``period_days``: no slower than the latency target (the SLO's, or each tenant's SLA
target) or, for indicator ``errors``, not failed. Over a window, the burn rate is the
share of bad calls divided by the share the objective allows (1 - objective): 1 spends
the budget exactly over the period, 14.4 spends 2% of a 30-day budget in an hour. The
error budget remaining is 1 - bad share / allowed share over the period (negative once
overspent).

Burn-rate alerts are alert rules (metric ``burn_rate``) tied to the SLO: the rule's
window is the long window, ``short_window`` the short one, and the figure compared with
the threshold is the smaller of the two burn rates, so both windows must burn. The
defaults are the workbook's: page at 14.4x over 1 h and 5 m, page at 6x over 6 h and
30 m, ticket at 1x over 3 d and 6 h; each is an ordinary rule afterwards (adjustable).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from tenantscope.alerts.rules import MAX_ID, format_duration, parse_duration
from tenantscope.errors import InvalidFields
from tenantscope.query.queries import Queries
from tenantscope.query.scope import Scope
from tenantscope.query.windows import Counts, slo_counts
from tenantscope.storage.alert_state import AlertRule, Slo
from tenantscope.storage.base import ConfigStore
from tenantscope.storage.validation import MAX_LABEL, MAX_TENANT_ID

INDICATORS = ("latency", "errors")
PERIODS = (7, 28, 30)


@dataclass(frozen=True, slots=True)
class BurnAlert:
    severity: str  # critical pages, warning makes a ticket
    factor: Decimal
    long_s: int
    short_s: int


DEFAULT_BURN_ALERTS = (
    BurnAlert("critical", Decimal("14.4"), 3600, 300),
    BurnAlert("critical", Decimal(6), 6 * 3600, 1800),
    BurnAlert("warning", Decimal(1), 3 * 86400, 6 * 3600),
)
# what the SLA page and the API show per tenant
STATUS_WINDOWS = {"1h": 3600.0, "6h": 6 * 3600.0, "3d": 3 * 86400.0}


def check_slo(data: Any) -> tuple[Slo, list[BurnAlert], list[int]]:
    """The SLO a submission describes, its burn-rate alerts (``burn_alerts``: a list of
    {severity, factor, long, short}; default the workbook's; [] for none) and the
    contact points they notify."""
    if not isinstance(data, dict):
        raise InvalidFields({"body": "a JSON object of the SLO's fields"})
    allowed = {
        "name", "indicator", "objective", "target_ms", "period_days", "tenant_ids", "tier",
        "burn_alerts", "contact_ids",
    }  # fmt: skip
    problems = {f: "not an SLO field" for f in sorted(set(data) - allowed)}
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_LABEL:
        problems["name"] = f"required, at most {MAX_LABEL} characters"
    indicator = data.get("indicator", "latency")
    if indicator not in INDICATORS:
        problems["indicator"] = "latency (calls within the target) or errors"
    objective = Decimal(0)
    try:
        objective = Decimal(str(data.get("objective")))
        if not Decimal(50) <= objective < Decimal(100):
            raise ValueError
    except (ArithmeticError, ValueError):
        problems["objective"] = "a percentage from 50 to below 100, e.g. 99.5"
    target = data.get("target_ms")
    if target is not None and (
        not isinstance(target, int) or isinstance(target, bool) or not 1 <= target <= 10**7
    ):
        problems["target_ms"] = "milliseconds (or leave out: each tenant's SLA target)"
    period = data.get("period_days", 30)
    if period not in PERIODS:
        problems["period_days"] = f"one of {', '.join(map(str, PERIODS))}"
    tenant_ids = data.get("tenant_ids", [])
    if not isinstance(tenant_ids, list) or not all(
        isinstance(t, str) and len(t) <= MAX_TENANT_ID for t in tenant_ids
    ):
        problems["tenant_ids"] = "a list of tenant ids (empty: every tenant)"
        tenant_ids = []
    tier = data.get("tier", "") or ""
    if not isinstance(tier, str) or len(tier) > MAX_LABEL:
        problems["tier"] = "a tier name"
    burns: list[BurnAlert] = list(DEFAULT_BURN_ALERTS)
    if "burn_alerts" in data:
        burns = []
        given = data["burn_alerts"]
        if not isinstance(given, list):
            problems["burn_alerts"] = "a list of {severity, factor, long, short}"
            given = []
        for i, b in enumerate(given):
            try:
                burn = BurnAlert(
                    severity=str(b.get("severity", "critical")),
                    factor=Decimal(str(b["factor"])),
                    long_s=parse_duration(b["long"]),
                    short_s=parse_duration(b["short"]),
                )
                if burn.severity not in ("critical", "warning", "info"):
                    raise ValueError
                if not (0 < burn.factor < 1000 and 0 < burn.short_s < burn.long_s <= 31 * 86400):
                    raise ValueError
            except (AttributeError, KeyError, ArithmeticError, ValueError):
                problems[f"burn_alerts.{i}"] = (
                    "severity (critical, warning, info), factor > 0, and windows with"
                    " short shorter than long (e.g. long 1h, short 5m)"
                )
                continue
            burns.append(burn)
    contact_ids = data.get("contact_ids", [])
    if not isinstance(contact_ids, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= MAX_ID for c in contact_ids
    ):
        problems["contact_ids"] = "a list of contact point ids"
        contact_ids = []
    if indicator == "latency" and target is None and not problems.get("target_ms"):
        pass  # each tenant's own SLA target (tenants without one are not covered)
    if problems:
        raise InvalidFields(problems)
    slo = Slo(
        name=str(name).strip(),
        indicator=indicator,
        objective=objective,
        target_ms=target,
        period_days=period,
        tenant_ids=list(dict.fromkeys(tenant_ids)),
        tier=tier,
    )
    return slo, burns, contact_ids


def burn_rules(slo: Slo, burns: list[BurnAlert], contact_ids: list[int]) -> list[AlertRule]:
    """One alert rule per burn-rate alert, per tenant, notifying ``contact_ids``."""
    return [
        AlertRule(
            name=f"{slo.name}: burning {b.factor}x over {format_duration(b.long_s)}"
            f" and {format_duration(b.short_s)}",
            metric="burn_rate",
            comparator=">",
            threshold=b.factor,
            window_s=b.long_s,
            short_window_s=b.short_s,
            # evaluated about 20 times per short window, at most once a minute
            interval_s=max(60, min(b.short_s // 20, 3600)),
            severity=b.severity,
            tenant_ids=list(slo.tenant_ids),
            tier=slo.tier,
            per_tenant=True,
            contact_ids=list(contact_ids),
            description=f"SLO {slo.name}: {slo.objective}% over {slo.period_days} days",
        )
        for b in burns
    ]


def allowed_share(slo: Slo) -> Decimal:
    return (Decimal(100) - slo.objective) / Decimal(100)


def burn(bad: int, total: int, allowed: Decimal) -> Decimal | None:
    if total == 0:
        return None
    return (Decimal(bad) / Decimal(total) / allowed).quantize(Decimal("0.001"))


def targets_of(
    config: ConfigStore, slo: Slo, selected: list[str] | None
) -> dict[str, float] | float:
    """The latency target: the SLO's for every tenant, or each tenant's SLA target."""
    if slo.target_ms is not None:
        return float(slo.target_ms)
    tenants = config.list_tenants()
    return {
        t.tenant_id: float(t.sla_p95_ms)
        for t in tenants
        if t.sla_p95_ms is not None and (selected is None or t.tenant_id in selected)
    }


@dataclass(frozen=True, slots=True)
class SloStatus:
    slo_id: int
    tenant_id: str
    requests: int  # over the period
    good_pct: Decimal | None
    budget_remaining_pct: Decimal | None  # of the period's error budget (negative: overspent)
    burn_rates: dict[str, Decimal | None]  # STATUS_WINDOWS name -> burn rate


def counts(
    queries: Queries,
    config: ConfigStore,
    slo: Slo,
    scope: Scope,
    now: datetime,
    windows: dict[str, float],
    tenant_ids: list[str] | None = None,
) -> dict[str, dict[str, Counts]]:
    """``slo_counts`` for the SLO's tenants (within ``scope``, and ``tenant_ids``)."""
    selected = queries.windows.selection(scope, slo.tenant_ids, slo.tier)
    if tenant_ids is not None:
        selected = [t for t in (selected or tenant_ids) if t in tenant_ids]
    targets = targets_of(config, slo, selected) if slo.indicator == "latency" else None
    if isinstance(targets, dict) and selected is None:
        selected = list(targets)  # only tenants with a target are covered
    return slo_counts(
        queries.events,
        scope,
        now,
        windows,
        indicator=slo.indicator,
        tenant_ids=selected,
        targets=targets,
    )


def status(
    queries: Queries,
    config: ConfigStore,
    slo: Slo,
    scope: Scope,
    now: datetime,
    tenant_ids: list[str] | None = None,
) -> list[SloStatus]:
    """Each covered tenant's budget and burn rates now (tenants with calls in the period)."""
    assert slo.id is not None
    windows = {"period": slo.period_days * 86400.0, **STATUS_WINDOWS}
    found = counts(queries, config, slo, scope, now, windows, tenant_ids)
    allowed = allowed_share(slo)
    out = []
    for tid, by in sorted(found.items()):
        period = by["period"]
        share_bad = Decimal(period.bad) / Decimal(period.total) if period.total else None
        out.append(
            SloStatus(
                slo_id=slo.id,
                tenant_id=tid,
                requests=period.total,
                good_pct=None
                if share_bad is None
                else ((1 - share_bad) * 100).quantize(Decimal("0.001")),
                budget_remaining_pct=None
                if share_bad is None
                else ((1 - share_bad / allowed) * 100).quantize(Decimal("0.01")),
                burn_rates={w: burn(by[w].bad, by[w].total, allowed) for w in STATUS_WINDOWS},
            )
        )
    return out
