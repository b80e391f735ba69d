"""Row sources over the hourly rollups, exact at the edges of any time range.

A range ``[start, end)`` is split into whole hours ``[h0, h1)``, read from the rollup
tables, and the partial hours ``[start, h0)`` and ``[h1, end)``, read from ``records`` and
shaped like rollup rows. Summing either gives exactly what scanning ``records`` would.
Only tenant conditions can apply to rollups, so these sources take tenant clauses only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tenantscope.query.params import TimeRange
from tenantscope.query.scope import Scope
from tenantscope.storage import rollups


@dataclass(slots=True)
class TenantFilter:
    """Clauses on ``tenant_id`` only (scope, an explicit tenant, a search), with params."""

    clauses: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, scope: Scope) -> TenantFilter:
        f = cls()
        if not scope.is_all:
            f.add("tenant_id = :scope_tenant", scope_tenant=scope.tenant_id)
        return f

    def add(self, clause: str, **params: Any) -> TenantFilter:
        self.clauses.append(clause)
        self.params.update(params)
        return self

    def and_sql(self) -> str:
        return "".join(f" AND {c}" for c in self.clauses)


def _floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(t: datetime) -> datetime:
    f = _floor_hour(t)
    return f if f == t else f + timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Sources:
    """SQL (parenthesised sub-queries) and params for the three rollup shapes."""

    hourly: str
    latency: str
    sessions: str
    params: dict[str, Any]


def sources(rng: TimeRange, tf: TenantFilter) -> Sources:
    start, end = rng.naive()
    h0, h1 = _ceil_hour(start), _floor_hour(end)
    t = tf.and_sql()
    params: dict[str, Any] = {**tf.params, "r_start": start, "r_end": end}
    counted = f" AND {rollups.COUNTED}"
    if h0 >= h1:
        raw = f"start_time >= :r_start AND start_time < :r_end{t}"
        return Sources(
            hourly=f"(SELECT {rollups.HOURLY_ROW} FROM records WHERE {raw})",
            latency=f"(SELECT {rollups.LATENCY_ROW} FROM records WHERE {raw}{counted})",
            sessions=(
                f"(SELECT {rollups.SESSION_ROW} FROM records WHERE {raw} AND session_id <> '')"
            ),
            params=params,
        )
    params.update(r_h0=h0, r_h1=h1)
    edges = (
        "((start_time >= :r_start AND start_time < :r_h0)"
        f" OR (start_time >= :r_h1 AND start_time < :r_end)){t}"
    )
    whole = f"hour >= :r_h0 AND hour < :r_h1{t}"
    return Sources(
        hourly=(
            f"(SELECT {rollups.HOURLY_COLUMNS} FROM rollup_hourly WHERE {whole}"
            f" UNION ALL SELECT {rollups.HOURLY_ROW} FROM records WHERE {edges})"
        ),
        latency=(
            f"(SELECT tenant_id, hour, bucket, n FROM rollup_latency WHERE {whole}"
            f" UNION ALL SELECT {rollups.LATENCY_ROW} FROM records WHERE {edges}{counted})"
        ),
        sessions=(
            f"(SELECT tenant_id, hour, session_id, n FROM rollup_sessions WHERE {whole}"
            f" UNION ALL SELECT {rollups.SESSION_ROW} FROM records"
            f" WHERE {edges} AND session_id <> '')"
        ),
        params=params,
    )


def percentiles_sql(latency: str, keys: str, qs: dict[str, float]) -> str:
    """Per ``keys`` (comma-separated columns of ``latency``), the bucket value at each
    quantile: a query with ``keys`` and one column per entry of ``qs``."""
    cols = ", ".join(
        f"{rollups.bucket_value(f'min(CASE WHEN cum >= {q} * tot THEN bucket END)')} AS {name}"
        for name, q in qs.items()
    )
    return f"""(SELECT {keys}, {cols} FROM (
            SELECT {keys}, bucket,
                sum(n) OVER (PARTITION BY {keys} ORDER BY bucket
                             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cum,
                sum(n) OVER (PARTITION BY {keys}) AS tot
            FROM (SELECT {keys}, bucket, sum(n) AS n FROM {latency} l
                  GROUP BY {keys}, bucket HAVING sum(n) > 0) b
        ) c GROUP BY {keys})"""
