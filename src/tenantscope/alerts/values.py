"""A rule's figure for each of its instances, read through the query layer
(``query/windows.py``): the number its threshold is compared with."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from tenantscope.alerts import anomaly, insights, slo
from tenantscope.query.params import TimeRange
from tenantscope.query.queries import Queries
from tenantscope.query.scope import Scope
from tenantscope.query.windows import ALL, WindowFigures
from tenantscope.storage.alert_state import AlertRule
from tenantscope.storage.base import ConfigStore

# metrics that mean nothing below the rule's min_requests (a p95 of 2 calls)
NEEDS_REQUESTS = ("latency_p50", "latency_p95", "latency_p99", "latency_avg", "error_rate")
ADDITIVE = ("cost", "tokens", "requests")
HUNDRED = Decimal(100)


@dataclass(slots=True)
class Measured:
    # instance key -> (figure or None: no data, requests in the window)
    values: dict[str, tuple[Decimal | None, int]] = field(default_factory=dict)


def _dec(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(repr(value)).quantize(Decimal("0.001"))


def figure(rule: AlertRule, f: WindowFigures) -> Decimal | None:
    """The rule's metric from one window's figures (None: nothing to measure)."""
    m = rule.metric
    if m in NEEDS_REQUESTS and (f.requests == 0 or f.requests < rule.min_requests):
        return None
    if m == "latency_p50":
        return _dec(f.p50_ms)
    if m == "latency_p95":
        return _dec(f.p95_ms)
    if m == "latency_p99":
        return _dec(f.p99_ms)
    if m == "latency_avg":
        return _dec(f.avg_ms)
    if m == "error_rate":
        return (Decimal(f.errors) * HUNDRED / Decimal(f.requests)).quantize(Decimal("0.0001"))
    if m == "cost":
        return f.cost_usd
    if m == "tokens":
        return Decimal(f.tokens)
    if m == "requests":
        return Decimal(f.requests)
    if m == "sla_compliance":
        if f.targeted == 0 or f.targeted < rule.min_requests:
            return None
        return (Decimal(f.within_target) * HUNDRED / Decimal(f.targeted)).quantize(
            Decimal("0.0001")
        )
    raise ValueError(f"not a window metric: {m}")


def silent_value(rule: AlertRule) -> Decimal | None:
    """The figure of a tenant with no calls in the window: 0 for totals, else no data."""
    if rule.metric in ADDITIVE:
        return figure(rule, WindowFigures())
    return None


def month_start(now: datetime) -> datetime:
    now = now.astimezone(timezone.utc)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def measure(
    queries: Queries, config: ConfigStore, rule: AlertRule, window: TimeRange, now: datetime
) -> Measured:
    everyone = Scope.all()
    w = queries.windows
    selected = w.selection(everyone, rule.tenant_ids, rule.tier)
    out = Measured()
    if rule.metric == "budget_used":
        return _budget(queries, config, rule, selected, now)
    if rule.metric == "anomaly_score":
        return _anomaly(queries, rule, selected, now)
    if rule.metric == "burn_rate":
        return _burn(queries, config, rule, now)
    targets = None
    if rule.metric == "sla_compliance":
        targets = {
            t.tenant_id: t.sla_p95_ms
            for t in config.list_tenants()
            if t.sla_p95_ms is not None and (selected is None or t.tenant_id in selected)
        }
        if not targets:
            return out
    figures = w.figures(
        everyone,
        window,
        unit=rule.scope,
        tenant_ids=selected,
        filters=rule.filters,
        per_tenant=rule.per_tenant,
        targets=targets,
    )
    keys: list[str] = list(figures)
    if rule.per_tenant and selected is not None:
        keys = list(dict.fromkeys([*selected, *keys]))  # named tenants: even when silent
    if not rule.per_tenant:
        keys = [ALL]
    for key in keys:
        f = figures.get(key, WindowFigures())
        out.values[key] = (figure(rule, f), f.requests)
    return out


def _budget(
    queries: Queries,
    config: ConfigStore,
    rule: AlertRule,
    selected: list[str] | None,
    now: datetime,
) -> Measured:
    budgets = {
        t.tenant_id: t.monthly_budget_usd
        for t in config.list_tenants()
        if t.monthly_budget_usd is not None
        and t.monthly_budget_usd > 0
        and (selected is None or t.tenant_id in selected)
    }
    out = Measured()
    if not budgets:
        return out
    month = TimeRange(month_start(now), now)
    costs = queries.windows.cost_by_tenant(Scope.all(), month, list(budgets))
    if rule.per_tenant:
        for tid, budget in budgets.items():
            assert budget is not None
            used = costs.get(tid, Decimal(0)) * HUNDRED / budget
            out.values[tid] = (used.quantize(Decimal("0.0001")), 0)
    else:
        total = sum((b for b in budgets.values() if b is not None), Decimal(0))
        spent = sum((costs.get(t, Decimal(0)) for t in budgets), Decimal(0))
        out.values[ALL] = ((spent * HUNDRED / total).quantize(Decimal("0.0001")), 0)
    return out


# the last whole hour's scores, kept a few minutes: every anomaly rule evaluated in that
# time reads them once (a round over 1,000 tenants' four weeks takes about 2.5 s), and
# spans of that hour arriving late are in the next reading
SCORES_TTL = timedelta(minutes=5)
_scores: weakref.WeakKeyDictionary[
    Queries,
    dict[tuple[datetime, tuple[str, ...] | None], tuple[datetime, dict[str, Decimal | None]]],
] = weakref.WeakKeyDictionary()


def anomaly_scores(
    queries: Queries, selected: list[str] | None, now: datetime
) -> dict[str, Decimal | None]:
    """Each tenant's anomaly score of the last whole hour (None: not enough history)."""
    hour = insights.last_hour(now)
    key = (hour, None if selected is None else tuple(selected))
    mine = _scores.setdefault(queries, {})
    cached = mine.get(key)
    if cached is not None and now - cached[0] < SCORES_TTL:
        return cached[1]
    hourly = queries.windows.hourly(Scope.all(), insights.history_range(hour, hour), selected)
    scores: dict[str, Decimal | None] = {}
    for tid in list(hourly) if selected is None else selected:
        s = anomaly.score(hourly.get(tid, {}), hour)
        scores[tid] = None if s is None else Decimal(repr(round(s, 3)))
    if len(mine) > 32:
        mine.clear()
    mine[key] = (now, scores)
    return scores


def _anomaly(
    queries: Queries, rule: AlertRule, selected: list[str] | None, now: datetime
) -> Measured:
    scores = anomaly_scores(queries, selected, now)
    out = Measured()
    if rule.per_tenant:
        out.values = {tid: (value, 0) for tid, value in scores.items()}
    else:
        found = [v for v in scores.values() if v is not None]
        out.values[ALL] = (max(found) if found else None, 0)
    return out


def _burn(queries: Queries, config: ConfigStore, rule: AlertRule, now: datetime) -> Measured:
    out = Measured()
    slo_ = config.alerts.get_slo(rule.slo_id) if rule.slo_id is not None else None
    if slo_ is None:
        return out
    windows = {"long": float(rule.window_s), "short": float(rule.short_window_s)}
    found = slo.counts(queries, config, slo_, Scope.all(), now, windows)
    allowed = slo.allowed_share(slo_)
    for tid, by in found.items():
        long_, short = by["long"], by["short"]
        if long_.total == 0 or long_.total < rule.min_requests:
            out.values[tid] = (None, long_.total)
            continue
        rates = [slo.burn(c.bad, c.total, allowed) for c in (long_, short)]
        # no call in the short window: nothing is burning now
        value = (
            min((r for r in rates if r is not None), default=None)
            if rates[1] is not None
            else Decimal(0)
        )
        out.values[tid] = (value, long_.total)
    return out
