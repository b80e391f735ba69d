"""Traces: the list (one row per trace, newest first) and one trace as a span tree.

A trace is listed at its root span. Some traces have none stored: Langfuse 5 drops
plain-OTel parent spans from its export, and a service upstream may not send to tenantscope
at all, so every span that did arrive names a parent that never will. Such a trace is
listed at its *display root*, its earliest span (by start time, then span id) whose parent
is not stored, and marked ``incomplete``; its detail tree has those spans at the top level.
Its calls are counted in usage like any other, so it must not be missing from the list.

What a tenant-scoped caller sees is decided on its own tenant's spans only: a parent of
another tenant is, to it, a parent that is not stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from tenantscope.errors import BadRequest, NotFound
from tenantscope.query.common import Where, aware, from_json, ms, naive, to_int
from tenantscope.query.models import Page, SpanNode, TraceDetail, TraceRow
from tenantscope.query.params import (
    MAX_TIME,
    MIN_TIME,
    TimeRange,
    check_limit,
    decode_cursor,
    encode_cursor,
)
from tenantscope.query.scope import Scope
from tenantscope.storage.base import EventStore
from tenantscope.storage.rollups import COUNTED

# blocked: a call a limit refused (its trace holds that one record)
TRACE_STATUSES = ("ok", "error", "cancelled", "blocked")
# How far apart the spans of one trace are looked for (the ingest writer joins the spans of
# one trace over the same distance by default).
TRACE_SPAN_HOURS = 6
# The first stretch of time searched for traces without a root when the rooted traces of
# the page do not bound the search (few of them match), and how much longer each next one is.
FIRST_WINDOW = timedelta(minutes=10)
GROWTH = 8
# Where a trace's root span is looked for first: most traces last seconds to minutes.
ROOT_NEAR = timedelta(minutes=15)
# Deeper spans are shown at the top level rather than recursed into.
MAX_DEPTH = 200
# Filters a trace matches when any of its spans does.
SPAN_FILTERS = ("user_id", "session_id", "customer_id", "model", "feature")


@dataclass(frozen=True, slots=True)
class TraceFilters:
    """The trace list's filters. ``tenant_id`` is the tenant of the listed (root) span."""

    tenant_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    customer_id: str | None = None
    model: str | None = None
    feature: str | None = None
    status: str | None = None

    def check(self) -> None:
        if self.status not in (None, "", *TRACE_STATUSES):
            raise BadRequest(f"status must be one of {', '.join(TRACE_STATUSES)}")

    def add_span_clauses(self, w: Where, lo: str, hi: str) -> Where:
        """Clauses: the trace has a span starting in [:lo, :hi) that matches each filter
        (status ``ok``: none that failed)."""
        spans = f"SELECT trace_id FROM records WHERE start_time >= :{lo} AND start_time < :{hi}"
        for column in SPAN_FILTERS:
            value = getattr(self, column)
            if value:
                w.add(f"trace_id IN ({spans} AND {column} = :f_{column})", **{f"f_{column}": value})
        if self.status in ("error", "cancelled", "blocked"):
            w.add(f"trace_id IN ({spans} AND status = :f_status)", f_status=self.status)
        elif self.status == "ok":
            w.add(f"trace_id NOT IN ({spans} AND status <> 'ok')")
        return w


@dataclass(frozen=True, slots=True)
class _After:
    """A cursor: the page goes on below this (start time, trace id), newest first."""

    time: datetime
    trace_id: str

    @classmethod
    def parse(cls, cursor: str | None) -> _After | None:
        data = decode_cursor(cursor)
        if data is None:
            return None
        try:
            time = datetime.fromisoformat(str(data["t"]))
            if time.tzinfo is None:
                time = time.replace(tzinfo=timezone.utc)
            if not MIN_TIME <= time <= MAX_TIME:  # (what a hand-made cursor may hold)
                raise ValueError(time)
            return cls(naive(time), str(data["id"]))
        except (KeyError, ValueError, OverflowError):
            raise BadRequest("cursor is not valid: pass next_cursor from a previous page") from None

    def add_to(self, w: Where) -> Where:
        return w.add(
            "(start_time < :c_time OR (start_time = :c_time AND trace_id < :c_id))",
            c_time=self.time,
            c_id=self.trace_id,
        )


def _newest_first(row: dict[str, Any]) -> tuple[datetime, str]:
    return (row["start_time"], row["trace_id"])


class TraceQueries:
    def __init__(self, events: EventStore) -> None:
        self.events = events
        self._d = events.dialect

    # -- the list ------------------------------------------------------------------------
    def page(
        self,
        scope: Scope,
        rng: TimeRange,
        filters: TraceFilters,
        *,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[TraceRow]:
        """Traces whose (display) root span started in the range, newest first.

        The cost follows the page, not the range: the newest matching root spans (a top-N
        over one row per trace); then traces without a root, searched only where they could
        still make the page (below the last rooted trace of the page they cannot); then the
        totals of just the page's traces."""
        lim = check_limit(limit)
        filters.check()
        if filters.tenant_id is not None and not scope.allows(filters.tenant_id):
            return Page[TraceRow](items=[])
        after = _After.parse(cursor)
        rooted = self._rooted(scope, rng, filters, after, lim + 1)
        rootless = self._rootless(scope, rng, filters, after, lim + 1, rooted)
        head = _merge(rooted, rootless, lim + 1)
        more = len(head) > lim
        head = head[:lim]
        if not head:
            return Page[TraceRow](items=[])
        totals = self._totals(scope, head)
        items = [_trace_row(h, totals[h["trace_id"]]) for h in head if h["trace_id"] in totals]
        nxt = None
        if more:
            last = head[-1]
            nxt = encode_cursor({"t": last["start_time"].isoformat(), "id": last["trace_id"]})
        return Page[TraceRow](items=items, next_cursor=nxt)

    def _rooted(
        self,
        scope: Scope,
        rng: TimeRange,
        filters: TraceFilters,
        after: _After | None,
        count: int,
    ) -> list[dict[str, Any]]:
        """The newest ``count`` matching spans without a parent."""
        w = Where.of(scope, rng).tenant(filters.tenant_id)
        w.add("parent_span_id = ''")
        filters.add_span_clauses(w, "start", "end")
        if after is not None:
            after.add_to(w)
        rows = self.events.fetch(
            f"""SELECT trace_id, start_time, name FROM records {w.sql}
                ORDER BY start_time DESC, trace_id DESC LIMIT :lim""",
            {**w.params, "lim": count},
        )
        return [{**r, "incomplete": False} for r in rows]

    def _rootless(
        self,
        scope: Scope,
        rng: TimeRange,
        filters: TraceFilters,
        after: _After | None,
        count: int,
        rooted: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """The newest ``count`` matching traces without a root span, at their display roots,
        among those that can still make the page.

        With a full page of rooted traces, only the time down to the last of them can hold
        rootless ones that make it: one search there, usually minutes of data. Otherwise
        (few rooted traces match, or none are stored at all) windows going back from the top
        of the page, each GROWTH times longer than the one before, are searched until they
        hold enough traces, rooted or not, or reach the range's start."""
        start, end = rng.naive()
        hi = end if after is None else min(end, after.time + timedelta(microseconds=1))
        full = len(rooted) >= count
        floor = rooted[-1]["start_time"] if full else start
        span = hi - floor if full else FIRST_WINDOW
        found: list[dict[str, Any]] = []
        lo = hi
        while lo > floor:
            top, lo = lo, max(floor, lo - span)
            # newer windows' traces come first; a window returns all it holds (< count)
            # unless it completes the page
            found += self._rootless_in(
                scope, rng, filters, after, lo, top, count - len(found), rooted
            )
            if len(found) + sum(1 for r in rooted if r["start_time"] >= lo) >= count:
                break
            span *= GROWTH
        return found

    def _rootless_in(
        self,
        scope: Scope,
        rng: TimeRange,
        filters: TraceFilters,
        after: _After | None,
        lo: datetime,
        hi: datetime,
        count: int,
        rooted: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """The newest ``count`` matching traces without a root whose display root starts in
        [lo, hi).

        The candidates are the traces of matching spans with a parent in the window, less
        the page's rooted traces. A few candidates are usually traces whose root started
        just before the window: one cheap look at the root spans around it settles them.
        What remains is decided by the spans of those traces within the joining distance:
        which parents are stored, whether the trace has a root after all, and which span is
        its display root."""
        start, end = rng.naive()
        pad = timedelta(hours=TRACE_SPAN_HOURS)
        kids = Where.of(scope).tenant(filters.tenant_id)
        kids.add(
            "start_time >= :w_lo AND start_time < :w_hi AND parent_span_id <> ''",
            w_lo=lo,
            w_hi=hi,
        )
        # the spans that can match a filter are those of the candidates' traces
        filters.add_span_clauses(kids, "f_lo", "f_hi")
        kids.params.update(f_lo=max(start, lo - pad), f_hi=min(end, hi + pad))
        found = self.events.fetch(f"SELECT DISTINCT trace_id FROM records {kids.sql}", kids.params)
        open_ids = {r["trace_id"] for r in found} - {r["trace_id"] for r in rooted}
        if open_ids and len(open_ids) <= count:
            # (many open traces mean rootless traffic, for which this look is wasted)
            open_ids -= self._with_root_near(scope, lo, hi, open_ids)
        if not open_ids:
            return []
        near = Where.of(scope).add(
            "start_time >= :n_lo AND start_time < :n_hi"
            f" AND {self._d.contains('open_ids', 'trace_id')}",
            n_lo=lo - pad,
            n_hi=hi + pad,
            open_ids=sorted(open_ids),
        )
        first = Where().add(
            "k = 1 AND rooted = 0 AND start_time >= :w_lo AND start_time < :w_hi",
            w_lo=lo,
            w_hi=hi,
        )
        first.tenant(filters.tenant_id)
        if after is not None:
            after.add_to(first)
        # MATERIALIZED: read once; inlined into both sides of the self-join below, DuckDB
        # would scan the window twice
        sql = f"""
            WITH near AS MATERIALIZED (
                SELECT trace_id, span_id, parent_span_id, start_time, name, tenant_id
                FROM records {near.sql}
            ),
            tops AS (
                SELECT n.* FROM near n LEFT JOIN near p
                    ON p.trace_id = n.trace_id AND p.span_id = n.parent_span_id
                WHERE n.parent_span_id = '' OR n.parent_span_id = n.span_id
                    OR p.span_id IS NULL
            ),
            ranked AS (
                SELECT *,
                    row_number() OVER (PARTITION BY trace_id ORDER BY start_time, span_id) AS k,
                    max(CASE WHEN parent_span_id = '' THEN 1 ELSE 0 END)
                        OVER (PARTITION BY trace_id) AS rooted
                FROM tops
            )
            SELECT trace_id, start_time, name FROM ranked {first.sql}
            ORDER BY start_time DESC, trace_id DESC LIMIT :lim"""
        params = {**near.params, **first.params, "lim": count}
        return [{**r, "incomplete": True} for r in self.events.fetch(sql, params)]

    def _with_root_near(
        self, scope: Scope, lo: datetime, hi: datetime, trace_ids: set[str]
    ) -> set[str]:
        """Those of ``trace_ids`` with a root span within ROOT_NEAR of [lo, hi)."""
        w = Where.of(scope).add(
            "start_time >= :r_lo AND start_time < :r_hi AND parent_span_id = ''"
            f" AND {self._d.contains('r_ids', 'trace_id')}",
            r_lo=lo - ROOT_NEAR,
            r_hi=hi + ROOT_NEAR,
            r_ids=sorted(trace_ids),
        )
        rows = self.events.fetch(f"SELECT DISTINCT trace_id FROM records {w.sql}", w.params)
        return {r["trace_id"] for r in rows}

    def _totals(self, scope: Scope, head: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Per trace of the page, its totals over its spans near its (display) root."""
        window = timedelta(hours=TRACE_SPAN_HOURS)
        w = Where.of(scope).add(
            f"start_time BETWEEN :lo AND :hi AND {self._d.contains('ids', 'trace_id')}",
            lo=min(r["start_time"] for r in head) - window,
            hi=max(r["start_time"] for r in head) + window,
            ids=[r["trace_id"] for r in head],
        )
        models = self._d.distinct_concat("CASE WHEN model <> '' THEN model END")
        sql = f"""
            SELECT trace_id,
                max(tenant_id) AS tenant_id, max(user_id) AS user_id,
                max(session_id) AS session_id, max(customer_id) AS customer_id,
                min(start_time) AS start_time, max(end_time) AS end_time,
                count(*) AS spans,
                sum(CASE WHEN {COUNTED} THEN 1 ELSE 0 END) AS requests,
                sum(CASE WHEN {COUNTED} THEN input_tokens ELSE 0 END) AS input_tokens,
                sum(CASE WHEN {COUNTED} THEN output_tokens ELSE 0 END) AS output_tokens,
                sum(CASE WHEN {COUNTED} THEN cost_usd END) AS cost_usd,
                max(CASE WHEN status = 'blocked' THEN 3 WHEN status = 'error' THEN 2
                    WHEN status = 'cancelled' THEN 1 ELSE 0 END) AS worst,
                {models} AS models
            FROM records {w.sql}
            GROUP BY trace_id"""
        return {r["trace_id"]: r for r in self.events.fetch(sql, w.params)}

    # -- one trace -----------------------------------------------------------------------
    def detail(self, scope: Scope, trace_id: str) -> TraceDetail:
        bounds = self.events.trace_bounds(trace_id)
        if bounds is None:
            raise NotFound(f"trace {trace_id!r} not found")
        # within the trace's own time range: the store reads that, not all the data
        w = Where.of(scope).add(
            "start_time >= :t_lo AND start_time <= :t_hi AND trace_id = :trace",
            t_lo=bounds[0],
            t_hi=bounds[1],
            trace=trace_id,
        )
        rows = self.events.fetch(
            f"SELECT * FROM records {w.sql} ORDER BY start_time, span_id", w.params
        )
        if not rows:
            raise NotFound(f"trace {trace_id!r} not found")
        nodes = {r["span_id"] or r["event_id"]: span_node(r) for r in rows}
        if not scope.is_all:
            # a parent this caller cannot see (another tenant's span) is not named to it
            for key, node in nodes.items():
                if node.parent_span_id and node.parent_span_id not in nodes:
                    nodes[key] = node.model_copy(update={"parent_span_id": ""})
        counted = [n for n in nodes.values() if n.counted]
        start = min(aware(r["start_time"]) or datetime.max for r in rows)
        end = max(aware(r["end_time"]) or datetime.min for r in rows)
        cost = sum((n.cost_usd for n in counted if n.cost_usd is not None), Decimal(0))
        return TraceDetail(
            trace_id=trace_id,
            tenant_id=rows[0]["tenant_id"],
            start_time=start,
            end_time=end,
            duration_ms=round((end - start).total_seconds() * 1000.0, 3),
            spans=len(rows),
            requests=len(counted),
            total_tokens=sum(n.input_tokens + n.output_tokens for n in counted),
            cost_usd=cost,
            incomplete=not any(r["parent_span_id"] == "" for r in rows),
            roots=span_tree(nodes),
        )


def _merge(
    rooted: list[dict[str, Any]], rootless: list[dict[str, Any]], count: int
) -> list[dict[str, Any]]:
    """The newest ``count`` of both, one row per trace."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for r in sorted(rooted + rootless, key=_newest_first, reverse=True):
        if r["trace_id"] not in seen:
            seen.add(r["trace_id"])
            out.append(r)
    return out[:count]


def _trace_row(head: dict[str, Any], r: dict[str, Any]) -> TraceRow:
    return TraceRow(
        trace_id=head["trace_id"],
        name=head["name"] or "",
        tenant_id=r["tenant_id"],
        user_id=r["user_id"],
        session_id=r["session_id"],
        customer_id=r["customer_id"],
        start_time=aware(r["start_time"]),
        duration_ms=round((r["end_time"] - r["start_time"]).total_seconds() * 1000.0, 3),
        spans=to_int(r["spans"]),
        requests=to_int(r["requests"]),
        input_tokens=to_int(r["input_tokens"]),
        output_tokens=to_int(r["output_tokens"]),
        total_tokens=to_int(r["input_tokens"]) + to_int(r["output_tokens"]),
        cost_usd=Decimal(0) if r["cost_usd"] is None else Decimal(r["cost_usd"]),
        status=("ok", "cancelled", "error", "blocked")[to_int(r["worst"])],
        models=[m for m in (r["models"] or "").split(",") if m],
        incomplete=head["incomplete"],
    )


def span_tree(nodes: dict[str, SpanNode]) -> list[SpanNode]:
    """The spans (keyed by span id, in start order) as a forest. A span whose parent is not
    stored is a top-level node, never dropped; so is any span no top-level node reaches
    (a parent cycle in bad data, or a chain deeper than MAX_DEPTH)."""
    children: dict[str, list[str]] = {}
    tops: list[str] = []
    for key, node in nodes.items():
        parent = node.parent_span_id
        if parent and parent in nodes and parent != key:
            children.setdefault(parent, []).append(key)
        else:
            tops.append(key)
    placed: set[str] = set()

    def build(key: str, depth: int) -> SpanNode:
        placed.add(key)
        kids: list[SpanNode] = []
        if depth < MAX_DEPTH:
            for k in children.get(key, []):
                if k not in placed:
                    kids.append(build(k, depth + 1))
        return nodes[key].model_copy(update={"children": kids})

    forest = [build(k, 0) for k in tops]
    forest += [build(k, 0) for k in nodes if k not in placed]
    return forest


def span_node(r: dict[str, Any]) -> SpanNode:
    return SpanNode(
        event_id=r["event_id"],
        span_id=r["span_id"],
        parent_span_id=r["parent_span_id"],
        name=r["name"],
        kind=r["kind"],
        tenant_id=r["tenant_id"],
        workspace_id=r["workspace_id"],
        user_id=r["user_id"],
        session_id=r["session_id"],
        customer_id=r["customer_id"] or "",
        feature=r["feature"],
        billable_action=r["billable_action"],
        customer_visible_label=r["customer_visible_label"],
        environment=r["environment"],
        service=r["service"],
        provider=r["provider"],
        model=r["model"],
        operation=r["operation"],
        response_id=r["response_id"] or "",
        input_tokens=to_int(r["input_tokens"]),
        output_tokens=to_int(r["output_tokens"]),
        cache_read_tokens=to_int(r["cache_read_tokens"]),
        cache_write_tokens=to_int(r["cache_write_tokens"]),
        reasoning_tokens=to_int(r["reasoning_tokens"]),
        usage_convention=r["usage_convention"] or "",
        cost_usd=None if r["cost_usd"] is None else Decimal(r["cost_usd"]),
        cost_source=r["cost_source"],
        price_version=r["price_version"],
        counted=r["kind"] == "llm" and not r["shadowed"],
        shadowed=bool(r["shadowed"]),
        shadow_reason=r["shadow_reason"] or "",
        start_time=aware(r["start_time"]),
        end_time=aware(r["end_time"]),
        duration_ms=float(r["duration_ms"] or 0.0),
        ttft_ms=ms(r["ttft_ms"]),
        status=r["status"],
        error_type=r["error_type"],
        error_message=r["error_message"],
        billable_state=r["billable_state"],
        attributes=from_json(r["attributes"], {}),
        events=from_json(r["events"], []),
        source=r["source"],
    )
