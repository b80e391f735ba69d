"""Traces without a stored root span, the customer dimension, and the counting decisions
each span carries, in the query layer over real stores."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from tenantscope.errors import BadRequest, NotFound
from tenantscope.query.models import SpanNode, TraceDetail
from tenantscope.query.params import TimeRange
from tenantscope.query.queries import Queries
from tenantscope.query.scope import Scope
from tenantscope.query.traces import span_node, span_tree
from tenantscope.records import UsageRecord
from tenantscope.server.services import Services
from tests.query.seed import NOW
from tests.query.seed_traces import (
    FIRST,
    HANDOFF,
    OLD,
    PLAIN,
    REASON,
    ROOTED,
    ROOTLESS,
    SECOND,
    TIED,
    seed_traces,
)

ALL = Scope.all()
WEEK = TimeRange(NOW - timedelta(days=7), NOW + timedelta(hours=1))
DAY = TimeRange(NOW - timedelta(days=1), NOW + timedelta(hours=1))


@pytest.fixture
def q(services: Services) -> Iterator[Queries]:
    seed_traces(services)
    yield services.queries


def _flatten(nodes: list[SpanNode]) -> list[SpanNode]:
    out: list[SpanNode] = []
    for n in nodes:
        out += [n, *_flatten(n.children)]
    return out


def _plain_reading(q: Queries, tenant: str | None) -> list[tuple[str, str, bool]]:
    """(trace id, name, incomplete) of every trace a scope sees, newest first, read the
    obvious way: at each span without a parent, else at the earliest span (start, then
    span id) whose parent is not among the trace's visible spans."""
    rows = q.events.fetch(
        "SELECT trace_id, span_id, parent_span_id, start_time, name, tenant_id FROM records"
    )
    traces: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if tenant is None or r["tenant_id"] == tenant:
            traces.setdefault(r["trace_id"], []).append(r)
    listed = []
    for trace_id, spans in traces.items():
        roots = [s for s in spans if s["parent_span_id"] == ""]
        if roots:
            listed += [(s["start_time"], trace_id, s["name"], False) for s in roots]
            continue
        ids = {s["span_id"] for s in spans}
        tops = [s for s in spans if s["parent_span_id"] not in ids]
        first = min(tops, key=lambda s: (s["start_time"], s["span_id"]))
        listed.append((first["start_time"], trace_id, first["name"], True))
    listed.sort(key=lambda r: (r[0], r[1]), reverse=True)
    return [(trace_id, name, incomplete) for _, trace_id, name, incomplete in listed]


def test_a_trace_without_its_root_is_listed_incomplete_at_its_earliest_orphan(
    q: Queries,
) -> None:
    rows = {t.trace_id: t for t in q.traces(ALL, WEEK).items}
    assert set(rows) == {ROOTED, ROOTLESS, OLD, TIED, HANDOFF, PLAIN}
    t = rows[ROOTLESS]
    assert t.incomplete and t.name == "agent step"  # the earlier of its two top spans
    assert t.start_time == NOW - timedelta(minutes=90)
    # its totals are those of every span: the shadowed copy is not counted
    assert (t.spans, t.requests, t.total_tokens) == (4, 2, 220)
    assert t.cost_usd == Decimal("0.023") and t.user_id == "u2"
    assert rows[TIED].name == "first"  # same start time: the smaller span id
    assert rows[OLD].incomplete and rows[OLD].models == ["gpt-4o"]
    for complete in (ROOTED, HANDOFF, PLAIN):
        assert not rows[complete].incomplete
    # JSON carries the flag
    page = q.traces(ALL, WEEK).model_dump(mode="json")
    assert {i["trace_id"]: i["incomplete"] for i in page["items"]}[ROOTLESS] is True


@pytest.mark.parametrize("tenant", [None, "lf-co", "other-co", "plain-co"])
@pytest.mark.parametrize("limit", [1, 2, 5, 50])
def test_trace_pages_follow_a_plain_reading(q: Queries, tenant: str | None, limit: int) -> None:
    """Rooted and rootless traces interleave in one newest-first order, each once, across
    pages of any size, for every scope."""
    scope = ALL if tenant is None else Scope.tenant(tenant)
    got: list[tuple[str, str, bool]] = []
    cursor = None
    for _ in range(50):
        page = q.traces(scope, WEEK, limit=limit, cursor=cursor)
        got += [(t.trace_id, t.name, t.incomplete) for t in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert got == _plain_reading(q, tenant)


def test_the_span_tree_puts_spans_without_a_stored_parent_at_the_top(q: Queries) -> None:
    t = q.trace(ALL, ROOTLESS)
    assert t.incomplete and t.spans == 4 and t.requests == 2
    assert [r.span_id for r in t.roots] == [FIRST, SECOND]  # in start order
    assert sorted(c.name for c in t.roots[0].children) == ["chat gpt-4o", "chat gpt-4o (copy)"]
    assert len(_flatten(t.roots)) == t.spans  # nothing dropped
    assert not q.trace(ALL, ROOTED).incomplete
    tied = q.trace(ALL, TIED)
    assert [r.name for r in tied.roots] == ["first", "second"]


def test_a_tenant_sees_a_parent_of_another_tenant_as_missing(q: Queries) -> None:
    other = Scope.tenant("other-co")
    rows = q.traces(other, WEEK).items
    assert [(t.trace_id, t.name, t.incomplete) for t in rows] == [(HANDOFF, "chat gpt-4o", True)]
    assert rows[0].tenant_id == "other-co" and rows[0].spans == 1
    detail = q.trace(other, HANDOFF)
    assert detail.incomplete and [s.tenant_id for s in _flatten(detail.roots)] == ["other-co"]
    # the owner of the root sees its own trace as complete; everyone sees it once
    assert not q.trace(Scope.tenant("lf-co"), HANDOFF).incomplete
    assert [t.trace_id for t in q.traces(ALL, WEEK).items].count(HANDOFF) == 1
    with pytest.raises(NotFound):
        q.trace(other, ROOTLESS)
    assert q.traces(other, WEEK, tenant_id="lf-co").items == []


def test_filters_match_rootless_traces_by_any_span(q: Queries) -> None:
    def ids(**filters: Any) -> list[str]:
        return [t.trace_id for t in q.traces(ALL, WEEK, **filters).items]

    assert ids(user_id="u2") == [ROOTLESS]
    assert ids(customer_id="globex") == [ROOTLESS]
    assert ids(customer_id="acme") == [ROOTLESS, ROOTED]
    assert ids(model="gpt-4o-mini") == [PLAIN, ROOTLESS]
    assert ids(tenant_id="plain-co") == [PLAIN]
    assert OLD not in ids(tenant_id="lf-co", customer_id="acme")
    assert ids(tenant_id="lf-co", status="ok")[-1] == OLD
    assert [t.trace_id for t in q.traces(ALL, DAY).items].count(OLD) == 0  # 3 days back


def test_spans_carry_customer_usage_convention_and_shadow_reason(q: Queries) -> None:
    spans = {s.span_id: s for s in _flatten(q.trace(ALL, ROOTLESS).roots)}
    copy = spans["00000000000000b3"]
    assert copy.shadowed and not copy.counted and copy.shadow_reason == REASON
    assert copy.usage_convention == "openllmetry" and copy.customer_id == "acme"
    call = spans["00000000000000b2"]
    assert call.counted and call.shadow_reason == "" and call.usage_convention == "langfuse"
    assert spans[SECOND].customer_id == "globex"
    dumped = TraceDetail.model_validate(q.trace(ALL, ROOTLESS)).model_dump(mode="json")
    first = dumped["roots"][0]
    assert {"customer_id", "usage_convention", "shadow_reason"} <= set(first)


def test_breakdown_by_customer(q: Queries) -> None:
    bd = q.breakdown(ALL, WEEK, "customer", tenant_id="lf-co")
    # calls without a customer are one group with key "", like any empty dimension
    assert [(r.key, r.requests, r.cost_usd) for r in bd.items] == [
        ("acme", 2, Decimal("0.03")),
        ("", 1, Decimal("0.004")),
        ("globex", 1, Decimal("0.003")),
    ]
    assert bd.total_cost_usd == Decimal("0.037")
    plain = q.breakdown(Scope.tenant("plain-co"), WEEK, "customer")
    assert [r.key for r in plain.items] == [""]
    with pytest.raises(NotFound):
        q.breakdown(Scope.tenant("plain-co"), WEEK, "customer", tenant_id="lf-co")
    with pytest.raises(BadRequest):
        q.breakdown(ALL, WEEK, "customers")


def test_a_root_far_from_its_later_spans_still_makes_its_trace_complete(
    services: Services,
) -> None:
    """A long trace whose root started an hour before its children, below the page's last
    rooted trace: the first, close look at root spans misses it, the full one finds it."""
    long_root = NOW - timedelta(hours=3)

    def span(trace: str, span_id: str, parent: str, start: Any) -> UsageRecord:
        return UsageRecord(
            event_id=f"{trace}:{span_id}",
            trace_id=trace,
            span_id=span_id,
            parent_span_id=parent,
            name=f"{trace[:2]}-{span_id[-1]}",
            tenant_id="t",
            start_time=start,
            end_time=start + timedelta(seconds=1),
            duration_ms=1000.0,
        )

    services.events.write(
        [
            span("11" * 16, "1" * 16, "", long_root),
            span("11" * 16, "2" * 16, "1" * 16, NOW - timedelta(hours=1)),
            span("22" * 16, "3" * 16, "", NOW - timedelta(hours=2)),
            span("33" * 16, "4" * 16, "", NOW - timedelta(minutes=30)),
        ]
    )
    q = services.queries
    got = []
    cursor = None
    while True:
        page = q.traces(ALL, WEEK, limit=1, cursor=cursor)
        got += [(t.trace_id[:2], t.incomplete) for t in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert got == [("33", False), ("22", False), ("11", False)]


def _node(span_id: str, parent: str) -> SpanNode:
    record = UsageRecord(span_id, span_id=span_id, parent_span_id=parent)
    return span_node(dataclasses.asdict(record))


def test_span_tree_drops_no_span() -> None:
    """Spans on a parent cycle (bad data) are reached from no root: they are shown at the
    top level rather than lost; a span naming itself as parent is a root."""
    edges = [("a", "missing"), ("b", "a"), ("c", "d"), ("d", "c"), ("e", "e")]
    nodes = {k: _node(k, p) for k, p in edges}
    forest = span_tree(nodes)
    assert [n.span_id for n in forest] == ["a", "e", "c"]
    assert [c.span_id for c in forest[0].children] == ["b"]
    assert [c.span_id for c in forest[2].children] == ["d"]
