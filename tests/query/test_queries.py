"""The query layer over a known dataset in real stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from tenantscope.errors import BadRequest, NotFound
from tenantscope.query.params import MAX_TIME, MIN_TIME, TimeRange, parse_time
from tenantscope.query.queries import Queries
from tenantscope.query.scope import Scope
from tenantscope.server.services import Services
from tests.query.seed import HOSTILE, NOW, seed

ALL = Scope.all()
DAY = TimeRange(NOW - timedelta(days=1), NOW + timedelta(hours=1))
WEEK = TimeRange(NOW - timedelta(days=7), NOW + timedelta(hours=1))
APEX = Scope.tenant("apex-legal")


@pytest.fixture
def q(services: Services) -> Iterator[Queries]:
    seed(services)
    yield services.queries


def test_tenants_sorted_by_cost_with_config_and_exact_money(q: Queries) -> None:
    page = q.tenants(ALL, DAY, sort="cost")
    assert [t.tenant_id for t in page.items] == [
        "apex-legal",
        "stratex-consulting",
        "techstart-inc",
        HOSTILE,
    ]
    apex = page.items[0]
    assert apex.cost_usd == Decimal("0.100")
    assert (apex.requests, apex.traces, apex.sessions) == (4, 4, 2)
    assert apex.input_tokens == 4000 and apex.output_tokens == 400
    assert apex.errors == 1 and apex.error_rate == 0.25
    assert apex.display_name == "Apex Legal" and apex.tier == "enterprise"
    assert page.items[-1].cost_usd == Decimal("0.000000000001")
    # JSON money is an exact string
    assert page.model_dump(mode="json")["items"][-1]["cost_usd"] == "0.000000000001"


def test_tenants_search_sort_order_and_cursor(q: Queries) -> None:
    assert [t.tenant_id for t in q.tenants(ALL, DAY, q="STRAT").items] == ["stratex-consulting"]
    # display names and tiers are searched too
    assert [t.tenant_id for t in q.tenants(ALL, DAY, q="apex leg").items] == ["apex-legal"]
    asc = q.tenants(ALL, WEEK, sort="requests", order="asc")
    assert [t.requests for t in asc.items] == [1, 1, 2, 4]
    first = q.tenants(ALL, DAY, sort="tenant", order="asc", limit=3)
    assert first.next_cursor is not None
    rest = q.tenants(ALL, DAY, sort="tenant", order="asc", limit=3, cursor=first.next_cursor)
    ids = [t.tenant_id for t in first.items + rest.items]
    assert ids == sorted(ids) and len(ids) == 4 and rest.next_cursor is None
    with pytest.raises(BadRequest):
        q.tenants(ALL, DAY, sort="nope")
    with pytest.raises(BadRequest):
        q.tenants(ALL, DAY, cursor="%%%")


def test_time_range_excludes_older_calls(q: Queries) -> None:
    last_2h = TimeRange(NOW - timedelta(hours=2), NOW + timedelta(hours=1))
    stratex = q.tenant_usage(ALL, "stratex-consulting", last_2h)
    assert stratex.request_count == 1 and stratex.total_cost == Decimal("0.001")
    week = q.tenant_usage(ALL, "stratex-consulting", WEEK)
    assert week.request_count == 2 and week.total_cost == Decimal("0.003")


def test_tenant_usage_shape_and_scope(q: Queries) -> None:
    u = q.tenant_usage(ALL, "apex-legal", DAY)
    assert (u.token_count, u.request_count, u.session_count) == (4400, 4, 2)
    assert u.total_cost == Decimal("0.1")
    assert q.tenant_usage(APEX, "apex-legal", DAY).request_count == 4
    with pytest.raises(NotFound):
        q.tenant_usage(APEX, "stratex-consulting", DAY)
    # an unknown tenant has zero usage for an all-tenants caller
    assert q.tenant_usage(ALL, "nobody", DAY).request_count == 0


def test_tenant_scope_sees_only_its_tenant_everywhere(q: Queries) -> None:
    assert [t.tenant_id for t in q.tenants(APEX, DAY).items] == ["apex-legal"]
    assert {t.tenant_id for t in q.traces(APEX, DAY).items} == {"apex-legal"}
    assert q.traces(APEX, DAY, tenant_id="techstart-inc").items == []
    assert {u.tenant_id for u in q.users(APEX, DAY).items} == {"apex-legal"}
    assert {s.tenant_id for s in q.sessions(APEX, DAY).items} == {"apex-legal"}
    assert q.breakdown(APEX, DAY, "model").total_cost_usd == Decimal("0.1")
    assert {r.tenant_id for r in q.sla(APEX, DAY)} == {"apex-legal"}
    ts = q.timeseries(APEX, DAY, "cost", "hour", group_by="tenant")
    assert [s.key for s in ts.series] == ["apex-legal"]
    other = q.traces(ALL, DAY, tenant_id="techstart-inc").items[0].trace_id
    with pytest.raises(NotFound):
        q.trace(APEX, other)
    with pytest.raises(NotFound):
        q.tenant(APEX, "techstart-inc", DAY)


def test_tenant_detail_and_unknown_tenant(q: Queries) -> None:
    d = q.tenant(ALL, "apex-legal", DAY)
    assert d.totals.requests == 4
    assert d.config is not None and d.config.sla_p95_ms == 2000
    assert d.config.monthly_budget_usd == Decimal("500")
    with pytest.raises(NotFound):
        q.tenant(ALL, "nobody", DAY)


def test_traces_filters_and_cursor(q: Queries) -> None:
    all_traces = q.traces(ALL, WEEK)
    assert len(all_traces.items) == 8
    starts = [t.start_time for t in all_traces.items]
    assert starts == sorted(starts, reverse=True)
    assert len(q.traces(ALL, WEEK, model="claude-3-5-sonnet").items) == 2
    assert len(q.traces(ALL, WEEK, user_id="alice").items) == 2
    assert len(q.traces(ALL, WEEK, session_id="s3").items) == 2
    assert len(q.traces(ALL, DAY, session_id="s3").items) == 1
    assert len(q.traces(ALL, WEEK, feature="email").items) == 1
    errs = q.traces(ALL, WEEK, status="error").items
    assert [t.status for t in errs] == ["error"]
    assert len(q.traces(ALL, WEEK, status="ok").items) == 7
    p1 = q.traces(ALL, WEEK, limit=3)
    seen = [t.trace_id for t in p1.items]
    cursor = p1.next_cursor
    while cursor:
        page = q.traces(ALL, WEEK, limit=3, cursor=cursor)
        seen += [t.trace_id for t in page.items]
        cursor = page.next_cursor
    assert sorted(seen) == sorted(t.trace_id for t in all_traces.items)
    row = next(t for t in all_traces.items if t.tenant_id == "techstart-inc")
    assert (row.name, row.spans, row.requests, row.total_tokens) == ("POST /summarize", 2, 1, 1100)
    assert row.models == ["gpt-4o-mini"] and row.user_id == "dan"


def test_trace_detail_is_a_tree(q: Queries) -> None:
    tid = q.traces(ALL, DAY, status="error").items[0].trace_id
    t = q.trace(ALL, tid)
    assert len(t.roots) == 1 and t.roots[0].name == "POST /summarize"
    child = t.roots[0].children[0]
    assert child.model == "claude-3-5-sonnet" and child.counted
    assert child.tenant_id == "apex-legal"  # inherited
    assert child.error_message == "upstream 500"
    assert t.cost_usd == Decimal("0.04") and t.requests == 1
    with pytest.raises(NotFound):
        q.trace(ALL, "f" * 32)


def test_users_and_sessions(q: Queries) -> None:
    users = q.users(ALL, DAY, tenant_id="apex-legal", sort="cost")
    assert [(u.id, u.requests, u.cost_usd) for u in users.items] == [
        ("bob", 2, Decimal("0.07")),
        ("alice", 2, Decimal("0.03")),
    ]
    sessions = q.sessions(ALL, DAY, tenant_id="apex-legal", sort="cost")
    assert [(s.id, s.user_id) for s in sessions.items] == [("s2", "bob"), ("s1", "alice")]


def test_breakdowns(q: Queries) -> None:
    by_model = q.breakdown(ALL, DAY, "model")
    assert by_model.items[0].key == "claude-3-5-sonnet"
    assert by_model.items[0].cost_usd == Decimal("0.07")
    assert sum((i.cost_usd or 0 for i in by_model.items), Decimal(0)) == by_model.total_cost_usd
    by_feature = q.breakdown(ALL, WEEK, "feature", tenant_id="stratex-consulting")
    assert {i.key for i in by_feature.items} == {"summary", "email"}
    with pytest.raises(BadRequest):
        q.breakdown(ALL, DAY, "color")


def test_timeseries(q: Queries) -> None:
    ts = q.timeseries(ALL, DAY, "requests", "hour")
    assert len(ts.series) == 1
    assert sum(int(p.value or 0) for p in ts.series[0].points) == 7
    assert len(ts.series[0].points) == 25  # an hour-aligned 25 h window
    cost = q.timeseries(ALL, DAY, "cost", "day", group_by="tenant", limit=2)
    assert [s.key for s in cost.series] == ["apex-legal", "stratex-consulting"]
    assert q.timeseries(ALL, DAY, "p95_latency", "hour").series[0].points[-1].value is None
    with pytest.raises(BadRequest):
        q.timeseries(ALL, TimeRange(NOW - timedelta(days=400), NOW), "cost", "hour")


def test_sla_against_configured_targets(q: Queries) -> None:
    rows = {r.tenant_id: r for r in q.sla(ALL, WEEK)}
    apex = rows["apex-legal"]
    assert apex.target_p95_ms == 2000 and apex.requests == 4
    assert apex.within_target == 0.75 and apex.compliant is False
    assert apex.p95_ms is not None and apex.p95_ms > 2000
    stratex = rows["stratex-consulting"]
    assert stratex.compliant is True and stratex.within_target == 1.0
    tech = rows["techstart-inc"]
    assert tech.target_p95_ms is None and tech.compliant is None
    assert [r.tenant_id for r in q.sla(ALL, WEEK, tier="enterprise")] == ["apex-legal"]


def test_rollup_answers_equal_a_raw_scan_for_unaligned_ranges(q: Queries) -> None:
    import random

    rng = random.Random(11)
    for _ in range(30):
        a = NOW - timedelta(minutes=rng.randint(0, 60 * 40))
        b = a + timedelta(minutes=rng.randint(1, 60 * 40))
        window = TimeRange(a, b)
        raw = q.events.fetch(
            """SELECT tenant_id,
                   sum(CASE WHEN kind = 'llm' AND NOT shadowed THEN 1 ELSE 0 END) AS req,
                   sum(CASE WHEN kind = 'llm' AND NOT shadowed THEN cost_usd ELSE 0 END) AS c,
                   count(DISTINCT CASE WHEN session_id <> '' THEN session_id END) AS s
               FROM records WHERE start_time >= :a AND start_time < :b GROUP BY tenant_id""",
            {"a": a, "b": b},
        )
        expected = {r["tenant_id"]: (int(r["req"]), Decimal(r["c"]), int(r["s"])) for r in raw}
        got = {
            t.tenant_id: (t.requests, t.cost_usd, t.sessions)
            for t in q.tenants(ALL, window, limit=100).items
        }
        assert got == expected, (a, b)
        for tenant, (req, cost, ses) in expected.items():
            u = q.tenant_usage(ALL, tenant, window)
            assert (u.request_count, u.total_cost, u.session_count) == (req, cost, ses)
        total = q.totals(ALL, window)
        assert total.requests == sum(v[0] for v in expected.values())


def test_tenant_columns_agree_whichever_column_sorts(q: Queries) -> None:
    # sorting by sessions or p95 computes every column in one pass; other sorts compute
    # the expensive columns for the page only: the figures must be the same
    by_cost = {t.tenant_id: t for t in q.tenants(ALL, WEEK, sort="cost").items}
    for sort in ("sessions", "p95"):
        for t in q.tenants(ALL, WEEK, sort=sort).items:
            assert t == by_cost[t.tenant_id], sort
    p95s = [t.p95_ms for t in q.tenants(ALL, WEEK, sort="p95", order="asc").items]
    assert p95s == sorted(p95s)  # type: ignore[type-var]
    sessions = [t.sessions for t in q.tenants(ALL, WEEK, sort="sessions").items]
    assert sessions == sorted(sessions, reverse=True)


@pytest.mark.parametrize(("slowest_ms", "compliant"), [(2010.0, False), (1995.0, True)])
def test_sla_verdict_is_exact_next_to_the_target(
    services: Services, slowest_ms: float, compliant: bool
) -> None:
    """The histogram is 2% wide; a p95 within that of the target is decided exactly."""
    from tenantscope.records import UsageRecord

    services.config.set_tenant("edge", tier="enterprise", sla_p95_ms=2000)
    durations = [100.0 * (i + 1) for i in range(18)] + [slowest_ms, slowest_ms]  # 20 calls
    records = []
    for i, d in enumerate(durations):
        start = NOW - timedelta(hours=2) + timedelta(seconds=i)
        records.append(
            UsageRecord(
                event_id=f"edge-{i}",
                trace_id=f"{i + 1:032x}",
                span_id=f"{i + 1:016x}",
                name="chat",
                kind="llm",
                tenant_id="edge",
                model="gpt-4o-mini",
                start_time=start,
                end_time=start + timedelta(milliseconds=d),
                duration_ms=d,
            )
        )
    assert services.writer.write_sync(records).accepted == 20
    (row,) = services.queries.sla(ALL, WEEK, tenant_id="edge")
    exact = services.events.fetch(
        "SELECT quantile_cont(duration_ms, 0.95) AS p FROM records WHERE tenant_id = 'edge'"
    )[0]["p"]
    assert row.p95_ms == round(float(exact), 3)  # shown exactly, not as a bucket value
    assert row.compliant is compliant
    assert row.within_target == (1.0 if compliant else 0.9)


@pytest.mark.parametrize("sort", ["last_seen", "first_seen", "cost", "requests"])
def test_actor_pages_follow_a_raw_ordering(q: Queries, sort: str) -> None:
    """Paging one row at a time (ranked first, totals second, recent tails widened as
    needed) gives the order and the exact totals of a plain scan."""
    column = {"last_seen": "max(start_time)", "first_seen": "min(start_time)"}.get(
        sort,
        "sum(CASE WHEN kind = 'llm' AND NOT shadowed THEN cost_usd END)"
        if sort == "cost"
        else "sum(CASE WHEN kind = 'llm' AND NOT shadowed THEN 1 ELSE 0 END)",
    )
    raw = q.events.fetch(
        f"""SELECT session_id, tenant_id, {column} AS k,
                sum(CASE WHEN kind = 'llm' AND NOT shadowed THEN cost_usd END) AS cost
            FROM records WHERE session_id <> '' GROUP BY tenant_id, session_id
            ORDER BY k DESC NULLS LAST, session_id ASC, tenant_id ASC"""
    )
    got = []
    cursor = None
    while True:
        page = q.sessions(ALL, WEEK, sort=sort, limit=1, cursor=cursor)
        got += [(s.id, s.cost_usd) for s in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert got == [(r["session_id"], Decimal(r["cost"])) for r in raw]


def test_time_bounds_and_the_previous_period_of_the_widest_range() -> None:
    """Every time a query accepts lies between MIN_TIME and MAX_TIME; the times derived
    from them (the previous period, the default start) are still datetimes."""
    widest = TimeRange.parse("0", "2200-01-01T00:00:00Z")
    assert (widest.start, widest.end) == (MIN_TIME, MAX_TIME)
    before = widest.previous()
    assert before.end == MIN_TIME and before.start.year == 1740
    assert TimeRange.parse(None, "1970-01-01T00:00:01Z").start.year == 1969
    for bad in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1e20", "-inf"):
        with pytest.raises(BadRequest, match="out of range"):
            parse_time(bad, "from")
    with pytest.raises(BadRequest, match="RFC 3339"):
        parse_time("nan", "from")
