"""Every read of usage data. Each method takes a Scope first and applies it here, so no
router, page or command can forget the tenant filter.

SQL is written once with ``:named`` parameters; the EventStore's Dialect supplies the few
fragments that differ between backends. All values travel as parameters, never as text.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Concatenate, ParamSpec, TypeVar

from tenantscope.errors import BadRequest, NotFound
from tenantscope.query import breakdowns
from tenantscope.query.common import Where, aware, money, ms, to_int
from tenantscope.query.models import (
    ActorRow,
    Breakdown,
    CrossBreakdown,
    ModelRow,
    Page,
    Series,
    SeriesPoint,
    SlaRow,
    TenantConfigOut,
    TenantDetail,
    TenantRow,
    TenantSuggestion,
    TenantUsage,
    TimeSeries,
    Totals,
    TraceDetail,
    TraceRow,
)
from tenantscope.query.params import (
    MAX_LIMIT,
    TimeRange,
    check_limit,
    decode_cursor,
    encode_cursor,
)
from tenantscope.query.scope import Scope
from tenantscope.query.sources import (
    Sources,
    TenantFilter,
    exact_sources,
    percentiles_sql,
    sources,
    straddling_keys,
)
from tenantscope.query.suggest import tenant_suggestions
from tenantscope.query.traces import TraceFilters, TraceQueries
from tenantscope.query.windows import WindowQueries
from tenantscope.storage.base import ConfigStore, EventStore, TenantConfig
from tenantscope.storage.rollups import COUNTED, LATENCY_BASE

TENANT_SORTS: dict[str, str] = {
    "cost": "cost_usd",
    "traces": "traces",
    "sessions": "sessions",
    "requests": "requests",
    "tokens": "total_tokens",
    "errors": "error_rate",
    "p95": "p95_ms",
    "last_seen": "last_seen",
    "tenant": "tenant_id",
}
ACTOR_SORTS: dict[str, str] = {
    "cost": "cost_usd",
    "requests": "requests",
    "tokens": "total_tokens",
    "traces": "traces",
    "last_seen": "last_seen",
    "first_seen": "first_seen",
    "errors": "errors",
}
METRICS: tuple[str, ...] = ("cost", "tokens", "requests", "errors", "error_rate", "p95_latency")
INTERVALS: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
MAX_BUCKETS = 5000

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _one_snapshot(
    method: Callable[Concatenate[Queries, _P], _R],
) -> Callable[Concatenate[Queries, _P], _R]:
    """Every read of the method sees the store at one moment (``EventStore.snapshot``):
    what one read decides (which keys to read from records, which tenants fill a page)
    holds for the next, while the writer commits."""

    @functools.wraps(method)
    def in_snapshot(self: Queries, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self.events.snapshot():
            return method(self, *args, **kwargs)

    return in_snapshot


MAX_OFFSET = 2**40


def _order(value: str | None) -> str:
    if value in (None, "", "desc"):
        return "DESC"
    if value == "asc":
        return "ASC"
    raise BadRequest(f"order must be asc or desc, got {value!r}")


def _sort_column(sort: str | None, allowed: dict[str, str], default: str) -> str:
    key = sort or default
    if key not in allowed:
        raise BadRequest(f"sort must be one of {', '.join(allowed)}; got {sort!r}")
    return allowed[key]


def _offset(cursor: str | None) -> int:
    data = decode_cursor(cursor)
    if data is None:
        return 0
    off = data.get("o")
    # bounded: the store takes a 64-bit OFFSET, and a hand-made cursor may hold any number
    if not isinstance(off, int) or not 0 <= off <= MAX_OFFSET:
        raise BadRequest("cursor is not valid: pass next_cursor from a previous page") from None
    return off


class Queries:
    def __init__(self, events: EventStore, config: ConfigStore) -> None:
        self.events = events
        self.config = config
        d = events.dialect
        self._d = d
        self._traces = TraceQueries(events)
        # the figures alert rules compare (query/windows.py)
        self.windows = WindowQueries(events, config)
        # Sums for user and session lists (no percentiles: the lists don't show them, and
        # a quantile per group is the costliest part of such a scan).
        self._actor_sums_sql = f"""
            sum(CASE WHEN parent_span_id = '' THEN 1 ELSE 0 END) AS traces,
            sum(CASE WHEN {COUNTED} THEN 1 ELSE 0 END) AS requests,
            sum(CASE WHEN {COUNTED} THEN input_tokens ELSE 0 END) AS input_tokens,
            sum(CASE WHEN {COUNTED} THEN output_tokens ELSE 0 END) AS output_tokens,
            sum(CASE WHEN {COUNTED} THEN input_tokens + output_tokens ELSE 0 END)
                AS total_tokens,
            sum(CASE WHEN {COUNTED} THEN cost_usd END) AS cost_usd,
            sum(CASE WHEN {COUNTED} AND cost_usd IS NULL THEN 1 ELSE 0 END)
                AS unpriced_requests,
            sum(CASE WHEN {COUNTED} AND status = 'error' THEN 1 ELSE 0 END) AS errors,
            min(start_time) AS first_seen,
            max(start_time) AS last_seen"""

    # -- helpers -----------------------------------------------------------------------
    def _fetch(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self.events.fetch(sql, params)

    def _sources(self, rng: TimeRange, tf: TenantFilter) -> Sources:
        """The rollup sources of ``rng``, reading records only for the tenants whose
        records straddle an end of the range (query/sources.py). Call it inside the
        caller's snapshot (``@_one_snapshot``), so both reads see the same records."""
        return exact_sources(self._fetch, rng, tf)

    @staticmethod
    def _totals(row: dict[str, Any] | None) -> Totals:
        if row is None:
            return Totals()
        requests = to_int(row.get("requests"))
        errors = to_int(row.get("errors"))
        return Totals(
            sessions=to_int(row.get("sessions")),
            traces=to_int(row.get("traces")),
            requests=requests,
            input_tokens=to_int(row.get("input_tokens")),
            output_tokens=to_int(row.get("output_tokens")),
            total_tokens=to_int(row.get("total_tokens")),
            cost_usd=money(row.get("cost_usd")),
            unpriced_requests=to_int(row.get("unpriced_requests")),
            errors=errors,
            error_rate=round(errors / requests, 6) if requests else 0.0,
            p50_ms=ms(row.get("p50_ms")),
            p95_ms=ms(row.get("p95_ms")),
            first_seen=aware(row.get("first_seen")),
            last_seen=aware(row.get("last_seen")),
        )

    def _require_tenant(self, scope: Scope, tenant_id: str) -> None:
        if not scope.allows(tenant_id):
            # the same answer as for a tenant that does not exist: no existence oracle
            raise NotFound(f"tenant {tenant_id!r} not found")

    def _name_matches(self, q: str) -> list[str]:
        needle = q.lower()
        return [
            t.tenant_id
            for t in self.config.list_tenants()
            if needle in t.display_name.lower() or needle in t.tier.lower()
        ]

    # -- tenants -----------------------------------------------------------------------
    def _tenant_filter(self, scope: Scope, tenant_id: str | None, q: str | None) -> TenantFilter:
        tf = TenantFilter.of(scope)
        if tenant_id is not None:
            tf.add("tenant_id = :tenant", tenant=tenant_id)
        if q:
            names = self._name_matches(q)
            if names:
                tf.add(
                    "(position(lower(:q) IN lower(tenant_id)) > 0 OR "
                    f"{self._d.contains('q_ids', 'tenant_id')})",
                    q=q,
                    q_ids=names,
                )
            else:
                tf.add("position(lower(:q) IN lower(tenant_id)) > 0", q=q)
        return tf

    def _tenant_totals_sql(
        self, src: Sources, *, latency: bool = True, sessions: bool = True
    ) -> str:
        """Per tenant totals over the rollup sources (one row per tenant with records)."""
        pct = percentiles_sql(src.latency, "tenant_id", {"p50_ms": 0.5, "p95_ms": 0.95})
        lat_cols = "p.p50_ms, p.p95_ms" if latency else "NULL AS p50_ms, NULL AS p95_ms"
        lat_join = f"LEFT JOIN {pct} p ON p.tenant_id = h.tenant_id" if latency else ""
        ses_col = "coalesce(s.sessions, 0)" if sessions else "0"
        ses_join = (
            f"""LEFT JOIN (
                SELECT tenant_id, count(*) AS sessions FROM (
                    SELECT tenant_id, session_id FROM {src.sessions} ss
                    GROUP BY tenant_id, session_id HAVING sum(n) > 0
                ) x GROUP BY tenant_id
            ) s ON s.tenant_id = h.tenant_id"""
            if sessions
            else ""
        )
        return f"""
            SELECT h.*, h.input_tokens + h.output_tokens AS total_tokens,
                {ses_col} AS sessions, {lat_cols},
                CASE WHEN h.requests > 0 THEN h.errors * 1.0 / h.requests ELSE 0 END
                    AS error_rate
            FROM (
                SELECT tenant_id, sum(spans) AS spans, sum(roots) AS traces,
                    sum(requests) AS requests, sum(input_tokens) AS input_tokens,
                    sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost_usd,
                    sum(unpriced) AS unpriced_requests, sum(errors) AS errors,
                    min(first_seen) AS first_seen, max(last_seen) AS last_seen
                FROM {src.hourly} hs GROUP BY tenant_id HAVING sum(spans) > 0
            ) h
            {ses_join}
            {lat_join}"""

    @_one_snapshot
    def tenants(
        self,
        scope: Scope,
        rng: TimeRange,
        *,
        q: str | None = None,
        tenant_id: str | None = None,
        sort: str | None = None,
        order: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[TenantRow]:
        """Tenants with totals (or the one ``tenant_id``). Sums and counts are exact;
        p50/p95 come from the latency histogram (within 1%)."""
        col = _sort_column(sort, TENANT_SORTS, "cost")
        direction = _order(order)
        lim = check_limit(limit)
        off = _offset(cursor)
        tf = self._tenant_filter(scope, tenant_id, q)
        keys = straddling_keys(self._fetch, rng, tf)
        src = sources(rng, tf, keys)
        # Distinct sessions and latency percentiles cost most; unless the list is sorted by
        # them, rank on the cheap totals first and compute them for the page only.
        expensive = col in ("sessions", "p95_ms")
        sql = f"""
            SELECT * FROM ({self._tenant_totals_sql(src, latency=expensive, sessions=expensive)}) t
            ORDER BY {col} {direction} NULLS LAST, tenant_id ASC
            LIMIT :lim OFFSET :off"""
        rows = self._fetch(sql, {**src.params, "lim": lim + 1, "off": off})
        more = len(rows) > lim
        rows = rows[:lim]
        if rows and not expensive:
            page_ids = [r["tenant_id"] for r in rows]
            on_page = set(page_ids)
            page = sources(
                rng,
                tf.add(self._d.contains("page_ids", "tenant_id"), page_ids=page_ids),
                None if keys is None else [k for k in keys if k[0] in on_page],
            )
            extra = {
                r["tenant_id"]: r for r in self._fetch(self._tenant_totals_sql(page), page.params)
            }
            for r in rows:
                e = extra.get(r["tenant_id"], {})
                r["sessions"] = e.get("sessions", 0)
                r["p50_ms"] = e.get("p50_ms")
                r["p95_ms"] = e.get("p95_ms")
        configs = self.config.get_tenants([r["tenant_id"] for r in rows])
        items = []
        for r in rows:
            cfg = configs.get(r["tenant_id"])
            items.append(
                TenantRow(
                    tenant_id=r["tenant_id"],
                    display_name=cfg.display_name if cfg else "",
                    tier=cfg.tier if cfg else "",
                    **self._totals(r).model_dump(),
                )
            )
        nxt = encode_cursor({"o": off + lim}) if more else None
        return Page[TenantRow](items=items, next_cursor=nxt)

    @_one_snapshot
    def totals(
        self,
        scope: Scope,
        rng: TimeRange,
        *,
        tenant_id: str | None = None,
        sessions: bool = True,
    ) -> Totals:
        """Totals over every tenant the scope allows (or one tenant). ``sessions=False``
        skips counting distinct sessions (then 0), the costliest figure."""
        if tenant_id is not None:
            self._require_tenant(scope, tenant_id)
        src = self._sources(rng, self._tenant_filter(scope, tenant_id, None))
        pct = percentiles_sql(
            f"(SELECT '' AS k, bucket, n FROM {src.latency} la)",
            "k",
            {"p50_ms": 0.5, "p95_ms": 0.95},
        )
        count_sessions = (
            f"""(SELECT count(*) FROM (
                    SELECT tenant_id, session_id FROM {src.sessions} ss
                    GROUP BY tenant_id, session_id HAVING sum(n) > 0) x)"""
            if sessions
            else "0"
        )
        sql = f"""
            SELECT h.*, h.input_tokens + h.output_tokens AS total_tokens,
                {count_sessions} AS sessions, p.p50_ms, p.p95_ms
            FROM (
                SELECT sum(roots) AS traces, sum(requests) AS requests,
                    sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                    sum(cost_usd) AS cost_usd, sum(unpriced) AS unpriced_requests,
                    sum(errors) AS errors, min(first_seen) AS first_seen,
                    max(last_seen) AS last_seen
                FROM {src.hourly} hs
            ) h LEFT JOIN {pct} p ON true"""
        rows = self._fetch(sql, src.params)
        return self._totals(rows[0] if rows else None)

    @_one_snapshot
    def tenant(self, scope: Scope, tenant_id: str, rng: TimeRange) -> TenantDetail:
        self._require_tenant(scope, tenant_id)
        src = self._sources(rng, self._tenant_filter(scope, tenant_id, None))
        rows = self._fetch(self._tenant_totals_sql(src), src.params)
        totals = self._totals(rows[0] if rows else None)
        cfg = self.config.get_tenant(tenant_id)
        if not rows and cfg is None and not self._tenant_exists(scope, tenant_id):
            raise NotFound(f"tenant {tenant_id!r} not found")
        return TenantDetail(
            tenant_id=tenant_id,
            totals=totals,
            config=_config_out(cfg) if cfg else None,
            start=rng.start,
            end=rng.end,
        )

    def _tenant_exists(self, scope: Scope, tenant_id: str) -> bool:
        tf = TenantFilter.of(scope).add("tenant_id = :tenant", tenant=tenant_id)
        sql = f"SELECT 1 AS x FROM rollup_hourly WHERE true{tf.and_sql()} LIMIT 1"
        return bool(self._fetch(sql, tf.params))

    @_one_snapshot
    def tenant_usage(self, scope: Scope, tenant_id: str, rng: TimeRange) -> TenantUsage:
        """The seeds' ``get_tenant_usage``: exact tokens, requests, sessions and cost."""
        self._require_tenant(scope, tenant_id)
        src = self._sources(rng, self._tenant_filter(scope, tenant_id, None))
        rows = self._fetch(self._tenant_totals_sql(src, latency=False), src.params)
        row = rows[0] if rows else {}
        return TenantUsage(
            tenant_id=tenant_id,
            token_count=to_int(row.get("total_tokens")),
            request_count=to_int(row.get("requests")),
            session_count=to_int(row.get("sessions")),
            total_cost=money(row.get("cost_usd")),
            start=rng.start,
            end=rng.end,
        )

    # -- traces (query/traces.py) ------------------------------------------------------
    def traces(
        self,
        scope: Scope,
        rng: TimeRange,
        *,
        tenant_id: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        customer_id: str | None = None,
        model: str | None = None,
        feature: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[TraceRow]:
        """Traces whose root span (or, without one, display root) started in the range,
        newest first. A filter but the tenant matches a trace when any of its spans matches
        (status ``ok``: none failed)."""
        filters = TraceFilters(
            tenant_id=tenant_id,
            user_id=user_id,
            session_id=session_id,
            customer_id=customer_id,
            model=model,
            feature=feature,
            status=status,
        )
        return self._traces.page(scope, rng, filters, limit=limit, cursor=cursor)

    def trace(self, scope: Scope, trace_id: str) -> TraceDetail:
        """One trace as a span tree; spans whose parent is not stored are top-level."""
        return self._traces.detail(scope, trace_id)

    # -- users and sessions --------------------------------------------------------------
    def users(
        self,
        scope: Scope,
        rng: TimeRange,
        *,
        tenant_id: str | None = None,
        sort: str | None = None,
        order: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[ActorRow]:
        return self._actors("user_id", scope, rng, tenant_id, sort, order, limit, cursor)

    def sessions(
        self,
        scope: Scope,
        rng: TimeRange,
        *,
        tenant_id: str | None = None,
        user_id: str | None = None,
        sort: str | None = None,
        order: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[ActorRow]:
        return self._actors(
            "session_id", scope, rng, tenant_id, sort, order, limit, cursor, user_id=user_id
        )

    def _actors(
        self,
        column: str,
        scope: Scope,
        rng: TimeRange,
        tenant_id: str | None,
        sort: str | None,
        order: str | None,
        limit: int | None,
        cursor: str | None,
        *,
        user_id: str | None = None,
    ) -> Page[ActorRow]:
        col = _sort_column(sort, ACTOR_SORTS, "last_seen")
        direction = _order(order)
        lim = check_limit(limit)
        off = _offset(cursor)
        if tenant_id is not None and not scope.allows(tenant_id):
            return Page[ActorRow](items=[])
        w = Where.of(scope, rng).tenant(tenant_id)
        w.eq("user_id", user_id, "f_user").add(f"{column} <> ''")
        # a session is one session; only a user's sessions need counting
        sessions = (
            "1 AS sessions"
            if column == "session_id"
            else "count(DISTINCT CASE WHEN session_id <> '' THEN session_id END) AS sessions"
        )
        # a session's user (sessions only: for users it is the group key itself)
        user = "max(user_id)" if column == "session_id" else "''"
        sums = f"""{column} AS id, tenant_id, {self._actor_sums_sql}, {sessions},
                {user} AS user_of"""
        newest_first = col == "last_seen" and direction == "DESC"
        if tenant_id is not None and not newest_first:
            # one tenant's groups are few: one pass over its records does it all
            rows = self._fetch(
                f"""SELECT {sums} FROM records {w.sql} GROUP BY tenant_id, {column}
                    ORDER BY {col} {direction} NULLS LAST, id ASC, tenant_id ASC
                    LIMIT :lim OFFSET :off""",
                {**w.params, "lim": lim + 1, "off": off},
            )
        else:
            # Two steps, so the cost follows the page: rank the groups on the sort key
            # alone, then compute the exact totals of just the page's groups.
            page = self._rank_actors(column, w, rng, col, direction, lim + 1, off)
            if not page:
                return Page[ActorRow](items=[])
            w.add(
                self._d.contains("page_tenants", "tenant_id"),
                page_tenants=sorted({t for t, _ in page}),
            )
            w.add(self._d.contains("page_ids", column), page_ids=sorted({i for _, i in page}))
            sql = f"SELECT {sums} FROM records {w.sql} GROUP BY tenant_id, {column}"
            found = {(r["tenant_id"], r["id"]): r for r in self._fetch(sql, w.params)}
            rows = [found[key] for key in page if key in found]
        more = len(rows) > lim
        items = []
        for r in rows[:lim]:
            t = self._totals(r)
            items.append(
                ActorRow(
                    id=r["id"],
                    tenant_id=r["tenant_id"],
                    requests=t.requests,
                    traces=t.traces,
                    sessions=t.sessions,
                    input_tokens=t.input_tokens,
                    output_tokens=t.output_tokens,
                    total_tokens=t.total_tokens,
                    cost_usd=t.cost_usd,
                    errors=t.errors,
                    first_seen=t.first_seen,
                    last_seen=t.last_seen,
                    user_id=r["user_of"],
                )
            )
        nxt = encode_cursor({"o": off + lim}) if more else None
        return Page[ActorRow](items=items, next_cursor=nxt)

    def _rank_actors(
        self,
        column: str,
        w: Where,
        rng: TimeRange,
        col: str,
        direction: str,
        count: int,
        off: int,
    ) -> list[tuple[str, str]]:
        """(tenant_id, id) of the groups on one page, in order. Money is ranked as a
        double here (cheap); the page's figures are exact decimals."""
        key = {
            "cost_usd": f"sum(CASE WHEN {COUNTED} THEN CAST(cost_usd AS DOUBLE) END)",
            "requests": f"sum(CASE WHEN {COUNTED} THEN 1 ELSE 0 END)",
            "total_tokens": (
                f"sum(CASE WHEN {COUNTED} THEN input_tokens + output_tokens ELSE 0 END)"
            ),
            "traces": "sum(CASE WHEN parent_span_id = '' THEN 1 ELSE 0 END)",
            "errors": f"sum(CASE WHEN {COUNTED} AND status = 'error' THEN 1 ELSE 0 END)",
            "first_seen": "min(start_time)",
            "last_seen": "max(start_time)",
        }[col]
        sql = f"""
            SELECT tenant_id, {column} AS id, {key} AS k FROM records {{where}}
            GROUP BY tenant_id, {column}
            ORDER BY k {direction} NULLS LAST, id ASC, tenant_id ASC
            LIMIT :lim OFFSET :off"""
        params = {**w.params, "lim": count, "off": off}
        if col == "last_seen" and direction == "DESC":
            # The newest groups are those with records near the end of the range: look at
            # a growing tail of it until it holds a whole page (most lists need an hour).
            span = timedelta(hours=1)
            while rng.end - span > rng.start:
                tail = Where(list(w.clauses), dict(w.params)).add(
                    "start_time >= :tail_start",
                    tail_start=(rng.end - span).astimezone(timezone.utc).replace(tzinfo=None),
                )
                rows = self._fetch(sql.format(where=tail.sql), {**params, **tail.params})
                if len(rows) == count:
                    return [(r["tenant_id"], r["id"]) for r in rows]
                span *= 4
        rows = self._fetch(sql.format(where=w.sql), params)
        return [(r["tenant_id"], r["id"]) for r in rows]

    # -- breakdowns and series -----------------------------------------------------------
    def breakdown(
        self,
        scope: Scope,
        rng: TimeRange,
        by: str,
        *,
        tenant_id: str | None = None,
        limit: int | None = None,
    ) -> Breakdown:
        return self.breakdowns(scope, rng, (by,), tenant_id=tenant_id, limit=limit)[by]

    def breakdowns(
        self,
        scope: Scope,
        rng: TimeRange,
        bys: Sequence[str],
        *,
        tenant_id: str | None = None,
        limit: int | None = None,
        max_limit: int = MAX_LIMIT,
    ) -> dict[str, Breakdown]:
        """Totals grouped by each of several dimensions, in one pass (query/breakdowns.py)."""
        return breakdowns.grouped(
            self.events, scope, rng, bys, tenant_id=tenant_id, limit=limit, max_limit=max_limit
        )

    def cross_breakdown(
        self,
        scope: Scope,
        rng: TimeRange,
        by: str,
        group_by: str,
        *,
        tenant_id: str | None = None,
        limit: int | None = None,
        by_limit: int | None = None,
    ) -> CrossBreakdown:
        """Totals per (``group_by``, ``by``) pair, e.g. per tenant and feature: which
        customers use which features (query/breakdowns.py)."""
        return breakdowns.crossed(
            self.events,
            scope,
            rng,
            by,
            group_by,
            tenant_id=tenant_id,
            limit=limit,
            by_limit=by_limit,
        )

    @_one_snapshot
    def timeseries(
        self,
        scope: Scope,
        rng: TimeRange,
        metric: str,
        interval: str,
        *,
        tenant_id: str | None = None,
        group_by: str | None = None,
        limit: int | None = None,
    ) -> TimeSeries:
        """A metric per hour or day bucket, from the rollups (exact sums; p95 within 1%)."""
        if metric not in METRICS:
            raise BadRequest(f"metric must be one of {', '.join(METRICS)}; got {metric!r}")
        if interval not in INTERVALS:
            raise BadRequest(f"interval must be hour or day; got {interval!r}")
        if group_by not in (None, "", "tenant"):
            raise BadRequest("group_by must be tenant (or absent)")
        if tenant_id is not None and not scope.allows(tenant_id):
            raise NotFound(f"tenant {tenant_id!r} not found")
        buckets = _buckets(rng, interval)
        if len(buckets) > MAX_BUCKETS:
            raise BadRequest(
                f"{len(buckets)} {interval} buckets requested; at most {MAX_BUCKETS}:"
                " use interval=day or a shorter range"
            )
        lim = check_limit(limit, default=10)
        tf = self._tenant_filter(scope, tenant_id, None)
        keys: list[str] = [""]
        key_col = "''"
        if group_by == "tenant":
            src = self._sources(rng, tf)
            rank = {
                "tokens": "sum(input_tokens + output_tokens)",
                "requests": "sum(requests)",
                "errors": "sum(errors)",
            }.get(metric, "sum(cost_usd)")
            top = self._fetch(
                f"""SELECT tenant_id, {rank} AS v FROM {src.hourly} hs
                    GROUP BY tenant_id HAVING sum(spans) > 0
                    ORDER BY v DESC NULLS LAST, tenant_id LIMIT :lim""",
                {**src.params, "lim": lim},
            )
            keys = [r["tenant_id"] for r in top]
            if not keys:
                return TimeSeries(
                    metric=metric, interval=interval, start=rng.start, end=rng.end, series=[]
                )
            tf.add(self._d.contains("top", "tenant_id"), top=keys)
            key_col = "tenant_id"
        src = self._sources(rng, tf)
        t = self._d.bucket(interval, "hour")
        if metric == "p95_latency":
            lat = f"(SELECT {t} AS t, {key_col} AS key, bucket, n FROM {src.latency} la)"
            sql = f"SELECT t, key, v FROM {percentiles_sql(lat, 't, key', {'v': 0.95})} p"
        else:
            value = {
                "cost": "sum(cost_usd)",
                "tokens": "sum(input_tokens + output_tokens)",
                "requests": "sum(requests)",
                "errors": "sum(errors)",
                "error_rate": "sum(errors) * 1.0 / nullif(sum(requests), 0)",
            }[metric]
            sql = f"""SELECT {t} AS t, {key_col} AS key, {value} AS v
                FROM {src.hourly} hs GROUP BY 1, 2"""
        rows = self._fetch(sql, src.params)
        additive = metric in ("cost", "tokens", "requests", "errors")
        grid: dict[str, dict[datetime, Any]] = {k: {} for k in keys}
        for r in rows:
            tt = r["t"]
            if isinstance(tt, datetime) and tt.tzinfo is not None:
                tt = tt.astimezone(timezone.utc).replace(tzinfo=None)
            grid.setdefault(r["key"], {})[tt] = r["v"]
        series = []
        for k in keys:
            points = []
            for b in buckets:
                v = grid[k].get(b)
                if v is None and additive:
                    v = Decimal(0) if metric == "cost" else 0
                points.append(SeriesPoint(t=b.replace(tzinfo=timezone.utc), value=_point(v)))
            series.append(Series(key=k, points=points))
        return TimeSeries(
            metric=metric, interval=interval, start=rng.start, end=rng.end, series=series
        )

    # -- what the dashboard needs besides the API's queries ------------------------------
    def tenant_suggestions(
        self, scope: Scope, q: str | None, limit: int | None = None
    ) -> list[TenantSuggestion]:
        """Tenant ids and names matching ``q``, best first (query/suggest.py)."""
        return tenant_suggestions(self.events, self.config, scope, q, limit)

    def has_data(self, scope: Scope) -> bool:
        """Whether anything the scope allows was ever stored (the dashboard's empty state)."""
        tf = TenantFilter.of(scope)
        return bool(
            self._fetch(
                f"SELECT 1 AS x FROM rollup_hourly WHERE true{tf.and_sql()} LIMIT 1", tf.params
            )
        )

    @_one_snapshot
    def active_tenants(self, scope: Scope, rng: TimeRange) -> int:
        """How many tenants sent spans in the range."""
        src = self._sources(rng, self._tenant_filter(scope, None, None))
        rows = self._fetch(
            f"""SELECT count(*) AS n FROM (SELECT tenant_id FROM {src.hourly} hs
                GROUP BY tenant_id HAVING sum(spans) > 0) t""",
            src.params,
        )
        return to_int(rows[0]["n"]) if rows else 0

    def models(
        self, scope: Scope, rng: TimeRange, *, tenant_id: str | None = None
    ) -> list[ModelRow]:
        """The (provider, model) pairs of counted LLM calls in the range (of every tenant
        the scope allows, or of one), costliest first."""
        w = Where.of(scope, rng).tenant(tenant_id).add(COUNTED)
        sql = f"""
            SELECT provider, model, count(*) AS requests,
                sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                sum(cost_usd) AS cost_usd,
                sum(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END) AS unpriced_requests,
                max(start_time) AS last_seen
            FROM records {w.sql}
            GROUP BY provider, model
            ORDER BY cost_usd DESC NULLS LAST, requests DESC, provider, model"""
        return [
            ModelRow(
                provider=r["provider"],
                model=r["model"],
                requests=to_int(r["requests"]),
                input_tokens=to_int(r["input_tokens"]),
                output_tokens=to_int(r["output_tokens"]),
                # all calls unpriced: the cost is unknown, not zero
                cost_usd=None if r["cost_usd"] is None else Decimal(r["cost_usd"]),
                unpriced_requests=to_int(r["unpriced_requests"]),
                last_seen=r["last_seen"],
            )
            for r in self._fetch(sql, w.params)
        ]

    # -- SLA -----------------------------------------------------------------------------
    @_one_snapshot
    def sla(
        self,
        scope: Scope,
        rng: TimeRange,
        *,
        tier: str | None = None,
        tenant_id: str | None = None,
    ) -> list[SlaRow]:
        """p50/p95/p99 of counted LLM calls per tenant against the tenant's target (all
        tenants the scope allows, or one).

        Percentiles come from the latency histogram (within 1%); the verdict and the share
        within target are exact: requests within target are counted on the records, and a
        tenant whose p95 lies too close to its target for the histogram to decide gets its
        percentiles computed exactly (and shown exactly)."""
        if tenant_id is not None:
            self._require_tenant(scope, tenant_id)
        configs = {t.tenant_id: t for t in self.config.list_tenants()}
        targets = {
            t.tenant_id: t.sla_p95_ms
            for t in configs.values()
            if t.sla_p95_ms is not None
            and scope.allows(t.tenant_id)
            and (tenant_id is None or t.tenant_id == tenant_id)
        }
        src = self._sources(rng, self._tenant_filter(scope, tenant_id, None))
        pct = percentiles_sql(
            src.latency, "tenant_id", {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99}
        )
        rows = self._fetch(
            f"""SELECT p.*, h.requests FROM {pct} p JOIN (
                    SELECT tenant_id, sum(requests) AS requests FROM {src.hourly} hs
                    GROUP BY tenant_id) h ON h.tenant_id = p.tenant_id
                ORDER BY p.tenant_id""",
            src.params,
        )
        within = self._within_target(scope, rng, targets) if targets else {}
        # a histogram p95 within a bucket or so of the target cannot decide the verdict
        close = [
            r["tenant_id"]
            for r in rows
            if r["tenant_id"] in targets
            and r["p95_ms"] is not None
            and targets[r["tenant_id"]] / LATENCY_BASE**1.5
            <= float(r["p95_ms"])
            <= targets[r["tenant_id"]] * LATENCY_BASE**1.5
        ]
        exact = self._exact_percentiles(scope, rng, close) if close else {}
        out = []
        for r in rows:
            tid = r["tenant_id"]
            cfg = configs.get(tid)
            if tier is not None and (cfg.tier if cfg else "") != tier:
                continue
            r = {**r, **exact.get(tid, {})}
            target = targets.get(tid)
            requests = to_int(r["requests"])
            p95 = ms(r["p95_ms"])
            out.append(
                SlaRow(
                    tenant_id=tid,
                    display_name=cfg.display_name if cfg else "",
                    tier=cfg.tier if cfg else "",
                    requests=requests,
                    p50_ms=ms(r["p50_ms"]),
                    p95_ms=p95,
                    p99_ms=ms(r["p99_ms"]),
                    target_p95_ms=target,
                    within_target=(
                        round(within.get(tid, 0) / requests, 6) if target and requests else None
                    ),
                    compliant=(p95 <= target) if (target and p95 is not None) else None,
                )
            )
        return out

    def _within_target(
        self, scope: Scope, rng: TimeRange, targets: dict[str, int]
    ) -> dict[str, int]:
        """Exact count of counted LLM calls at or under each tenant's target."""
        by_target: dict[int, list[str]] = {}
        for tid, target in targets.items():
            by_target.setdefault(target, []).append(tid)
        w = Where.of(scope, rng).add(COUNTED)
        params = dict(w.params)
        cases = []
        for i, (target_ms, ids) in enumerate(sorted(by_target.items())):
            cases.append(f"WHEN {self._d.contains(f'g{i}', 'tenant_id')} THEN :t{i}")
            params[f"g{i}"] = ids
            params[f"t{i}"] = target_ms
        w.add(self._d.contains("targeted", "tenant_id"))
        params["targeted"] = list(targets)
        rows = self._fetch(
            f"""SELECT tenant_id, count(*) AS n FROM records {w.sql}
                AND duration_ms <= CASE {" ".join(cases)} END
                GROUP BY tenant_id""",
            params,
        )
        return {r["tenant_id"]: to_int(r["n"]) for r in rows}

    def _exact_percentiles(
        self, scope: Scope, rng: TimeRange, tenant_ids: list[str]
    ) -> dict[str, dict[str, Any]]:
        w = (
            Where.of(scope, rng)
            .add(COUNTED)
            .add(self._d.contains("exact_ids", "tenant_id"), exact_ids=tenant_ids)
        )
        q = self._d.quantile
        rows = self._fetch(
            f"""SELECT tenant_id,
                    {q("duration_ms", 0.5)} AS p50_ms,
                    {q("duration_ms", 0.95)} AS p95_ms,
                    {q("duration_ms", 0.99)} AS p99_ms
                FROM records {w.sql} GROUP BY tenant_id""",
            w.params,
        )
        return {r["tenant_id"]: r for r in rows}


def _config_out(cfg: TenantConfig) -> TenantConfigOut:
    return TenantConfigOut(
        display_name=cfg.display_name,
        tier=cfg.tier,
        sla_p95_ms=cfg.sla_p95_ms,
        rate_limit_rpm=cfg.rate_limit_rpm,
        monthly_budget_usd=cfg.monthly_budget_usd,
    )


def _buckets(rng: TimeRange, interval: str) -> list[datetime]:
    start, end = rng.naive()
    if interval == "day":
        b = start.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        b = start.replace(minute=0, second=0, microsecond=0)
    step = INTERVALS[interval]
    out: list[datetime] = []
    while b < end and len(out) <= MAX_BUCKETS:
        out.append(b)
        b += step
    return out


def _point(v: Any) -> float | int | str | None:
    if v is None:
        return None
    if isinstance(v, Decimal):
        from tenantscope.records import format_money

        return format_money(v)
    if isinstance(v, float):
        return round(v, 6)
    return int(v)
