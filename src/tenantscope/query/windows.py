"""The figures alert rules compare with their thresholds, over one window, per tenant or
over a rule's whole selection: the same records and counting rule as the dashboard.

Windows are short (minutes to a day) and rules filter by attributes the rollups do not
keep (model, feature, user, ...), so a window is read from ``records`` with exact
aggregates (percentiles exact, not from the histogram). The month-to-date cost and the
hourly history anomaly detection needs are whole-hour figures: they come from the
rollups through ``exact_sources``, like the tenants list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, NamedTuple

from tenantscope.query.common import Where, money, naive, to_int
from tenantscope.query.params import TimeRange
from tenantscope.query.scope import Scope
from tenantscope.query.sources import TenantFilter, exact_sources
from tenantscope.storage.base import ConfigStore, Dialect, EventStore
from tenantscope.storage.rollups import COUNTED

# rule filter -> records column
FILTER_COLUMNS = {
    "model": "model",
    "feature": "feature",
    "workspace": "workspace_id",
    "user": "user_id",
    "environment": "environment",
    "service": "service",
}
ALL = ""  # the key of a figure over the whole selection


@dataclass(frozen=True, slots=True)
class WindowFigures:
    requests: int = 0  # counted LLM calls (span unit) or traces (trace unit)
    errors: int = 0
    cost_usd: Decimal = Decimal(0)  # of the counted LLM calls in the window
    tokens: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    avg_ms: float | None = None
    within_target: int = 0  # requests at or under their tenant's SLA target
    targeted: int = 0  # requests of tenants that have a target


class HourFigures(NamedTuple):
    """One tenant's counted LLM calls in one hour. A tuple: half a million are made for
    the anomaly detector's four weeks of 1,000 tenants, and a tuple is made fastest."""

    requests: int
    errors: int
    tokens: int
    cost: Decimal


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


class WindowQueries:
    def __init__(self, events: EventStore, config: ConfigStore) -> None:
        self.events = events
        self.config = config
        self._d = events.dialect

    def selection(
        self, scope: Scope, tenant_ids: Sequence[str] = (), tier: str = ""
    ) -> list[str] | None:
        """The tenants a rule selects (None: every tenant the scope allows): the given
        ids, or the tenants of ``tier`` (configured ones), within the scope."""
        ids: list[str] | None = list(tenant_ids) if tenant_ids else None
        if tier:
            of_tier = [t.tenant_id for t in self.config.list_tenants() if t.tier == tier]
            ids = of_tier if ids is None else [t for t in ids if t in set(of_tier)]
        if not scope.is_all:
            assert scope.tenant_id is not None
            ids = [scope.tenant_id] if ids is None else [t for t in ids if scope.allows(t)]
        return ids

    def figures(
        self,
        scope: Scope,
        rng: TimeRange,
        *,
        unit: str = "span",
        tenant_ids: Sequence[str] | None = None,
        filters: Mapping[str, str] | None = None,
        per_tenant: bool = False,
        targets: Mapping[str, int] | None = None,
    ) -> dict[str, WindowFigures]:
        """Per tenant (``per_tenant``) or one figure (key ``ALL``) over the window, for
        the tenants ``tenant_ids`` (None: all the scope allows). ``unit`` span: counted
        LLM calls; trace: root spans. ``targets``: SLA targets in ms per tenant."""
        if tenant_ids is not None and not tenant_ids:
            return {}
        w = Where.of(scope, rng)
        if tenant_ids is not None:
            w.add(self._d.contains("sel", "tenant_id"), sel=list(tenant_ids))
        for name, value in (filters or {}).items():
            w.add(f"{FILTER_COLUMNS[name]} = :f_{name}", **{f"f_{name}": value})
        key = "tenant_id" if per_tenant else "''"
        target_case = self._target_case(w, targets or {})
        q = self._d.quantile
        unit_clause = COUNTED if unit == "span" else "parent_span_id = ''"
        money_cols = (
            """sum(coalesce(cost_usd, 0)) AS cost_usd,
               sum(input_tokens + output_tokens) AS tokens"""
            if unit == "span"
            else "0 AS cost_usd, 0 AS tokens"
        )
        rows = self.events.fetch(
            f"""SELECT {key} AS k, count(*) AS requests,
                    sum(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors,
                    {money_cols},
                    {q("duration_ms", 0.5)} AS p50, {q("duration_ms", 0.95)} AS p95,
                    {q("duration_ms", 0.99)} AS p99, avg(duration_ms) AS avg,
                    sum(CASE WHEN duration_ms <= {target_case} THEN 1 ELSE 0 END) AS within,
                    sum(CASE WHEN {target_case} IS NOT NULL THEN 1 ELSE 0 END) AS targeted
                FROM records {w.sql} AND {unit_clause} GROUP BY 1""",
            w.params,
        )
        money_by: dict[str, tuple[Decimal, int]] = {}
        if unit == "trace":
            # the calls of the window: a trace's cost is its calls' (filters apply to them)
            for r in self.events.fetch(
                f"""SELECT {key} AS k, sum(coalesce(cost_usd, 0)) AS cost_usd,
                        sum(input_tokens + output_tokens) AS tokens
                    FROM records {w.sql} AND {COUNTED} GROUP BY 1""",
                w.params,
            ):
                money_by[r["k"]] = (money(r["cost_usd"]), to_int(r["tokens"]))
        out = {}
        for r in rows:
            cost, tokens = money_by.get(r["k"], (money(r["cost_usd"]), to_int(r["tokens"])))
            out[r["k"]] = WindowFigures(
                requests=to_int(r["requests"]),
                errors=to_int(r["errors"]),
                cost_usd=cost,
                tokens=tokens,
                p50_ms=_f(r["p50"]),
                p95_ms=_f(r["p95"]),
                p99_ms=_f(r["p99"]),
                avg_ms=_f(r["avg"]),
                within_target=to_int(r["within"]),
                targeted=to_int(r["targeted"]),
            )
        for k, (cost, tokens) in money_by.items():
            if k not in out:  # calls without a root in the window (long traces)
                out[k] = WindowFigures(cost_usd=cost, tokens=tokens)
        return out

    def _target_case(self, w: Where, targets: Mapping[str, float]) -> str:
        return target_case(self._d, w, targets) if targets else "CAST(NULL AS DOUBLE)"

    def _filter(self, scope: Scope, tenant_ids: Sequence[str] | None) -> TenantFilter:
        tf = TenantFilter.of(scope)
        if tenant_ids is not None:
            tf.add(self._d.contains("sel", "tenant_id"), sel=list(tenant_ids))
        return tf

    def cost_by_tenant(
        self, scope: Scope, rng: TimeRange, tenant_ids: Sequence[str] | None = None
    ) -> dict[str, Decimal]:
        """Cost of counted LLM calls per tenant over ``rng`` (the tenants list's figure)."""
        if tenant_ids is not None and not tenant_ids:
            return {}
        with self.events.snapshot():
            src = exact_sources(self.events.fetch, rng, self._filter(scope, tenant_ids))
            rows = self.events.fetch(
                f"""SELECT tenant_id, sum(cost_usd) AS cost FROM {src.hourly} hs
                    GROUP BY tenant_id""",
                src.params,
            )
        return {r["tenant_id"]: money(r["cost"]) for r in rows}

    def cost_by_subject(
        self, scope: Scope, rng: TimeRange, column: str
    ) -> dict[tuple[str, str], Decimal]:
        """Cost of counted LLM calls per tenant and ``column`` (``feature``,
        ``workspace_id`` or ``user_id``) over ``rng``: what budgets per workspace or feature
        spent. The rollups do not keep these columns, so it reads ``records``."""
        if column not in FILTER_COLUMNS.values():
            raise ValueError(f"not a record column of the filters: {column}")
        w = Where.of(scope, rng).add(COUNTED)
        rows = self.events.fetch(
            f"""SELECT tenant_id, {column} AS subject, sum(coalesce(cost_usd, 0)) AS cost
                FROM records {w.sql} GROUP BY 1, 2""",
            w.params,
        )
        return {(r["tenant_id"], r["subject"]): money(r["cost"]) for r in rows}

    def blocks(
        self, scope: Scope, rng: TimeRange, tenant_ids: Sequence[str] | None = None
    ) -> dict[str, dict[str, int]]:
        """Calls refused by a limit (records with status ``blocked``) per tenant and the
        limit that refused them (its id, kept as the record's ``error_type``)."""
        if tenant_ids is not None and not tenant_ids:
            return {}
        w = Where.of(scope, rng).add("status = 'blocked'")
        if tenant_ids is not None:
            w.add(self._d.contains("sel", "tenant_id"), sel=list(tenant_ids))
        rows = self.events.fetch(
            f"""SELECT tenant_id, error_type AS ref, count(*) AS n FROM records {w.sql}
                GROUP BY 1, 2""",
            w.params,
        )
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            out.setdefault(r["tenant_id"], {})[r["ref"]] = to_int(r["n"])
        return out

    def hourly(
        self, scope: Scope, rng: TimeRange, tenant_ids: Sequence[str] | None = None
    ) -> dict[str, dict[datetime, HourFigures]]:
        """Per tenant and hour (aware UTC hour starts): counted calls, errors, tokens and
        cost. Hours without calls are absent."""
        if tenant_ids is not None and not tenant_ids:
            return {}
        d = self._d
        with self.events.snapshot():
            src = exact_sources(self.events.fetch, rng, self._filter(scope, tenant_ids))
            # one row per tenant holding its hours as lists: at 1,000 tenants over four
            # weeks, half a million (tenant, hour) rows made into Python objects one by
            # one took 3.7 s; as lists of plain numbers, under 1 s
            cols = {
                "hs": "h",
                "rs": "requests",
                "es": "errors",
                "ts": "tokens",
                "cs": "cost",
            }
            lists = ", ".join(f"{d.ordered_list(col, 'h')} AS {name}" for name, col in cols.items())
            rows = self.events.fetch(
                f"""SELECT tenant_id, {lists} FROM (
                        SELECT tenant_id, {d.epoch_seconds("hour")} AS h,
                            sum(requests) AS requests, sum(errors) AS errors,
                            sum(input_tokens + output_tokens) AS tokens,
                            CAST(sum(cost_usd) AS VARCHAR) AS cost
                        FROM {src.hourly} hs GROUP BY tenant_id, hour
                        HAVING sum(requests) > 0
                    ) x GROUP BY tenant_id""",
                src.params,
            )
        hours: dict[int, datetime] = {}
        out: dict[str, dict[datetime, HourFigures]] = {}
        for r in rows:
            series: dict[datetime, HourFigures] = {}
            for h, n, e, t, c in zip(r["hs"], r["rs"], r["es"], r["ts"], r["cs"], strict=True):
                hour = hours.get(h)
                if hour is None:
                    hour = hours[h] = datetime.fromtimestamp(h, timezone.utc)
                series[hour] = HourFigures(int(n), int(e), int(t), Decimal(c))
            out[r["tenant_id"]] = series
        return out

    def drivers(
        self, scope: Scope, rng: TimeRange, tenant_id: str
    ) -> dict[str, dict[str, Decimal]]:
        """Cost per model, feature, user and workspace of one tenant over ``rng``: what
        explains an anomaly (``alerts/anomaly.py``)."""
        out: dict[str, dict[str, Decimal]] = {}
        for dim, column in (
            ("model", "model"),
            ("feature", "feature"),
            ("user", "user_id"),
            ("workspace", "workspace_id"),
        ):
            w = Where.of(scope, rng).tenant(tenant_id).add(COUNTED)
            rows = self.events.fetch(
                f"""SELECT {column} AS k, sum(coalesce(cost_usd, 0)) AS cost
                    FROM records {w.sql} GROUP BY 1""",
                w.params,
            )
            out[dim] = {r["k"]: money(r["cost"]) for r in rows}
        return out


def target_case(d: Dialect, w: Where, targets: Mapping[str, float]) -> str:
    """A SQL expression: each row's tenant's target (ms), from ``targets`` (tenant ->
    target; one parameter list per distinct target), NULL for other tenants."""
    by_target: dict[float, list[str]] = {}
    for tid, target in targets.items():
        by_target.setdefault(target, []).append(tid)
    cases = []
    for i, (target_ms, ids) in enumerate(sorted(by_target.items())):
        cases.append(f"WHEN {d.contains(f'tg{i}', 'tenant_id')} THEN :tt{i}")
        w.params[f"tg{i}"] = ids
        w.params[f"tt{i}"] = target_ms
    return f"(CASE {' '.join(cases)} END)"


@dataclass(frozen=True, slots=True)
class Counts:
    total: int  # counted LLM calls
    bad: int  # over the latency target, or failed


def slo_counts(
    events: EventStore,
    scope: Scope,
    now: datetime,
    windows: Mapping[str, float],
    *,
    indicator: str,
    tenant_ids: Sequence[str] | None = None,
    targets: Mapping[str, float] | float | None = None,
) -> dict[str, dict[str, Counts]]:
    """Per tenant and window (name -> seconds back from ``now``): counted LLM calls and
    the bad ones among them (``indicator`` latency: slower than ``targets``, one target
    for all or one per tenant — only those tenants; errors: status error), in one scan
    of the longest window."""
    if not windows or (tenant_ids is not None and not tenant_ids):
        return {}
    d = events.dialect
    longest = max(windows.values())
    w = Where.of(scope, TimeRange(now - timedelta(seconds=longest), now)).add(COUNTED)
    if tenant_ids is not None:
        w.add(d.contains("sel", "tenant_id"), sel=list(tenant_ids))
    if indicator == "latency" and isinstance(targets, (int, float)):
        w.params["target_all"] = float(targets)
        bad = "duration_ms > :target_all"
    elif indicator == "latency":
        assert not isinstance(targets, (int, float))
        if not targets:
            return {}
        w.add(d.contains("targeted", "tenant_id"), targeted=list(targets))
        bad = f"duration_ms > {target_case(d, w, targets)}"
    else:
        bad = "status = 'error'"
    cols = []
    for i, (_name, seconds) in enumerate(windows.items()):
        w.params[f"since{i}"] = naive(now - timedelta(seconds=seconds))
        cols.append(f"sum(CASE WHEN start_time >= :since{i} THEN 1 ELSE 0 END) AS n{i}")
        cols.append(f"sum(CASE WHEN start_time >= :since{i} AND {bad} THEN 1 ELSE 0 END) AS b{i}")
    rows = events.fetch(
        f"SELECT tenant_id, {', '.join(cols)} FROM records {w.sql} GROUP BY tenant_id",
        w.params,
    )
    out: dict[str, dict[str, Counts]] = {}
    for r in rows:
        out[r["tenant_id"]] = {
            name: Counts(total=to_int(r[f"n{i}"]), bad=to_int(r[f"b{i}"]))
            for i, name in enumerate(windows)
        }
    return out
