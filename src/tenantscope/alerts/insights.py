"""Insights: each tenant's cost and usage anomalies over recent hours, each explained by
what drove it, and a tenant's biggest risers. Figures come from the query layer (hourly
rollups for the detector's history, records for the drivers); the detector is
``alerts/anomaly.py``.

A driver compares the anomalous hour's shares of cost per model, feature, user and
workspace with those of the four weeks before it (for a cost or a requests anomaly; a
share of cost says little about tokens per call or errors).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from tenantscope.alerts import anomaly
from tenantscope.alerts.anomaly import Anomaly, Driver
from tenantscope.query.params import TimeRange
from tenantscope.query.queries import Queries
from tenantscope.query.scope import Scope

MAX_HOURS = 7 * 24


@dataclass(frozen=True, slots=True)
class Finding:
    tenant_id: str
    anomaly: Anomaly
    driver: Driver | None


@dataclass(frozen=True, slots=True)
class Riser:
    dimension: str
    key: str
    cost_now: Decimal  # over the last day
    cost_before: Decimal  # an average day of the 7 before
    change: Decimal


def last_hour(now: datetime) -> datetime:
    """The last whole hour before ``now``."""
    now = now.astimezone(timezone.utc)
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def history_range(first: datetime, last: datetime) -> TimeRange:
    """What the detector needs to judge the hours ``first`` .. ``last``."""
    cfg = anomaly.DEFAULT
    back = cfg.weeks * timedelta(weeks=1) + timedelta(hours=cfg.neighbours)
    return TimeRange(first - back, last + timedelta(hours=1))


def _as_floats(costs: dict[str, dict[str, Decimal]]) -> dict[str, dict[str, float]]:
    return {dim: {k: float(v) for k, v in keys.items()} for dim, keys in costs.items()}


def anomalies(
    queries: Queries,
    scope: Scope,
    now: datetime,
    *,
    hours: int = 24,
    tenant_id: str | None = None,
    explain: int = 50,
) -> list[Finding]:
    """Anomalies of the last ``hours`` whole hours, newest first, per tenant the scope
    allows (or one); the newest ``explain`` with what drove them."""
    hours = max(1, min(hours, MAX_HOURS))
    last = last_hour(now)
    first = last - timedelta(hours=hours - 1)
    ids = [tenant_id] if tenant_id is not None else None
    hourly = queries.windows.hourly(scope, history_range(first, last), ids)
    found: list[tuple[str, Anomaly]] = []
    for tid, history in hourly.items():
        if not any(h >= first for h in history):
            continue  # nothing recent: nothing to judge
        hour = last
        while hour >= first:
            found += [(tid, a) for a in anomaly.detect(history, hour)]
            hour -= timedelta(hours=1)
    found.sort(key=lambda x: (x[1].hour, x[1].score), reverse=True)
    # drivers of the newest ``explain`` only: each costs eight queries (one hour's and
    # four weeks' cost per dimension), shared by the cost and requests of one hour
    drivers: dict[tuple[str, datetime], Driver | None] = {}
    out = []
    for n, (tid, a) in enumerate(found):
        driver = None
        if n < explain and a.metric in ("cost", "requests"):
            if (tid, a.hour) not in drivers:
                drivers[tid, a.hour] = _driver(queries, scope, tid, a)
            driver = drivers[tid, a.hour]
        out.append(Finding(tid, a, driver))
    return out


def _driver(
    queries: Queries, scope: Scope, tenant_id: str, a: anomaly.Anomaly
) -> anomaly.Driver | None:
    if a.metric not in ("cost", "requests"):
        return None  # a share of cost says little about tokens per call or errors
    now = queries.windows.drivers(scope, TimeRange(a.hour, a.hour + timedelta(hours=1)), tenant_id)
    before = queries.windows.drivers(
        scope, TimeRange(a.hour - timedelta(weeks=anomaly.DEFAULT.weeks), a.hour), tenant_id
    )
    return anomaly.explain(_as_floats(now), _as_floats(before))


def risers(
    queries: Queries, scope: Scope, tenant_id: str, now: datetime, limit: int = 5
) -> list[Riser]:
    """The models, features, users and workspaces whose cost over the last day rose most
    against an average day of the 7 before."""
    day = TimeRange(now - timedelta(days=1), now)
    week = TimeRange(now - timedelta(days=8), now - timedelta(days=1))
    recent = queries.windows.drivers(scope, day, tenant_id)
    before = queries.windows.drivers(scope, week, tenant_id)
    out = []
    for dim, keys in recent.items():
        for key, cost in keys.items():
            if key == "":
                continue  # calls without the attribute: no one to point at
            avg = before.get(dim, {}).get(key, Decimal(0)) / 7
            change = cost - avg
            if change > 0:
                out.append(Riser(dim, key, cost, avg.quantize(Decimal("0.000000001")), change))
    out.sort(key=lambda r: (-r.change, r.dimension, r.key))
    return out[:limit]
