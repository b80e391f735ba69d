"""Row sources over the hourly rollups, exact at the edges of any time range.

A range ``[start, end)`` is split into whole hours ``[h0, h1)``, read from the rollup
tables, and the partial hours at its edges. In an edge hour, a tenant whose records there
all fall inside the range is read from the rollups too (``straddling_sql`` finds the
others); the others' records in range are read from ``records`` and shaped like rollup
rows. Summing gives exactly what scanning ``records`` would.
Only tenant conditions can apply to rollups, so these sources take tenant clauses only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


@dataclass(frozen=True, slots=True)
class _Split:
    whole: str  # the rollup condition of the whole hours
    edges: list[datetime]  # the partial hours at the range's ends
    params: dict[str, Any]


def _split(rng: TimeRange, tf: TenantFilter) -> _Split:
    start, end = rng.naive()
    h0, h1 = _ceil_hour(start), _floor_hour(end)
    edges = {h for h in (_floor_hour(start), _floor_hour(end)) if not h0 <= h < h1}
    return _Split(
        whole="hour >= :r_h0 AND hour < :r_h1" if h0 < h1 else "FALSE",
        edges=sorted(h for h in edges if h < end),  # an end on the hour adds no edge
        params={**tf.params, "r_start": start, "r_end": end, "r_h0": h0, "r_h1": h1},
    )


def straddling_sql(rng: TimeRange, tf: TenantFilter) -> tuple[str, dict[str, Any]] | None:
    """The query of the (tenant_id, hour) keys of the range's edge hours whose records
    there do not all lie inside the range (their first or last start time says so), or
    None when the range has no edge hours. ``sources`` reads only those from records."""
    split = _split(rng, tf)
    if not split.edges:
        return None
    params = {**split.params, **{f"r_e{i}": h for i, h in enumerate(split.edges)}}
    in_edges = ", ".join(f":r_e{i}" for i in range(len(split.edges)))
    return (
        f"""SELECT tenant_id, hour FROM rollup_hourly WHERE hour IN ({in_edges}){tf.and_sql()}
            GROUP BY tenant_id, hour
            HAVING min(first_seen) < :r_start OR max(last_seen) >= :r_end""",
        params,
    )


Key = tuple[str, datetime]  # (tenant_id, edge hour)


def sources(rng: TimeRange, tf: TenantFilter, straddling: Sequence[Key] | None = None) -> Sources:
    """The sources over ``rng``. ``straddling``: the keys ``straddling_sql`` found (read
    in the same snapshot as the sources), or None to read every edge hour from records.

    In an edge hour, a tenant whose records all lie inside the range is read from the
    rollups: a range ending now, the usual case, then reads no records at all, however
    many arrived this hour."""
    split = _split(rng, tf)
    t = tf.and_sql()
    params = dict(split.params)
    edges = "(start_time < :r_h0 OR start_time >= :r_h1)"
    rolled, raw = f"{split.whole}{t}", None  # whole hours only
    if split.edges and straddling is None:  # every key of the edge hours from records
        raw = f"start_time >= :r_start AND start_time < :r_end AND {edges}{t}"
    elif split.edges:
        params.update({f"r_e{i}": h for i, h in enumerate(split.edges)})
        in_edges = "hour IN (" + ", ".join(f":r_e{i}" for i in range(len(split.edges))) + ")"
        rolled = f"({split.whole} OR {in_edges}){t}"
        if straddling:
            params.update(r_st_t=[k[0] for k in straddling], r_st_h=[k[1] for k in straddling])
            keys = "(SELECT unnest(:r_st_t) AS t, unnest(:r_st_h) AS h)"
            rolled = f"({split.whole} OR ({in_edges} AND (tenant_id, hour) NOT IN {keys})){t}"
            raw = (
                f"start_time >= :r_start AND start_time < :r_end AND {edges}"
                f" AND (tenant_id, date_trunc('hour', start_time)) IN {keys}{t}"
            )

    def union(table: str, columns: str, row: str, only: str = "") -> str:
        rollup = f"SELECT {columns} FROM {table} WHERE {rolled}"
        if raw is None:
            return f"({rollup})"
        return f"({rollup} UNION ALL SELECT {row} FROM records WHERE {raw}{only})"

    return Sources(
        hourly=union("rollup_hourly", rollups.HOURLY_COLUMNS, rollups.HOURLY_ROW),
        latency=union(
            "rollup_latency",
            "tenant_id, hour, bucket, n",
            rollups.LATENCY_ROW,
            f" AND {rollups.COUNTED}",
        ),
        sessions=union(
            "rollup_sessions",
            "tenant_id, hour, session_id, n",
            rollups.SESSION_ROW,
            " AND session_id <> ''",
        ),
        params=params,
    )


# Edge-hour keys read from records at most; beyond, the edge hours are read whole.
MAX_STRADDLING = 1000


Fetch = Callable[[str, dict[str, Any]], list[dict[str, Any]]]


def straddling_keys(fetch: Fetch, rng: TimeRange, tf: TenantFilter) -> list[Key] | None:
    """The keys ``straddling_sql`` finds, read with ``fetch`` (None: too many, read the
    edge hours whole). Call it inside the snapshot of the reads that use them
    (``EventStore.snapshot``), so both see the same records. The keys of a filter that
    adds tenant clauses to ``tf`` are these keys of its tenants."""
    found = straddling_sql(rng, tf)
    if found is None:
        return []
    rows = fetch(*found)
    if len(rows) > MAX_STRADDLING:  # as many keys as records, nearly: read the edges whole
        return None
    return [(r["tenant_id"], r["hour"]) for r in rows]


def exact_sources(fetch: Fetch, rng: TimeRange, tf: TenantFilter) -> Sources:
    """The sources of ``rng`` reading records only for the keys that straddle an end of
    the range (``straddling_keys``, in the caller's snapshot)."""
    return sources(rng, tf, straddling_keys(fetch, rng, tf))


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
