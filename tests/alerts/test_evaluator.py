"""The evaluator over real stores: states per tenant, notifications stored once with the
state change, the lease, and figures that are the query layer's own."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from tenantscope.alerts.contacts import check_contact
from tenantscope.alerts.evaluator import Evaluator
from tenantscope.alerts.rules import check_rule
from tenantscope.query.params import TimeRange
from tenantscope.query.scope import Scope
from tenantscope.records import UsageRecord
from tenantscope.server.services import Services
from tests.conftest import make_settings

NOW = datetime.now(timezone.utc).replace(microsecond=0)
_ids = itertools.count(1)


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    s = Services.open(
        make_settings(tmp_path / "data", duckdb_threads=1, ingest_workers=0, alerts=False)
    )
    try:
        yield s
    finally:
        s.close()


def calls(
    tenant: str,
    durations_ms: list[float],
    *,
    at: datetime,
    model: str = "gpt-4o",
    cost: str = "0.01",
    status: str = "ok",
) -> list[UsageRecord]:
    """One trace per call: a root span and its LLM call, both lasting the duration."""
    out = []
    for d in durations_ms:
        n = next(_ids)
        trace = f"{n:032x}"
        start = at - timedelta(milliseconds=d)
        common = {
            "trace_id": trace,
            "tenant_id": tenant,
            "start_time": start,
            "end_time": at,
            "duration_ms": d,
            "status": status,
        }
        out.append(
            UsageRecord(event_id=f"{trace}:r", span_id=f"{2 * n:016x}", name="POST /ask", **common)
        )  # type: ignore[arg-type]
        out.append(
            UsageRecord(
                event_id=f"{trace}:l",
                span_id=f"{2 * n + 1:016x}",
                parent_span_id=f"{2 * n:016x}",
                name="chat",
                kind="llm",
                provider="openai",
                model=model,
                input_tokens=100,
                output_tokens=10,
                cost_usd=Decimal(cost),
                cost_source="catalog",
                **common,  # type: ignore[arg-type]
            )
        )
    return out


def _contact(svc: Services) -> int:
    c = svc.config.alerts.add_contact(
        check_contact("hook", "webhook", {"url": "http://127.0.0.1:9/x"})
    )
    assert c.id is not None
    return c.id


def _rule(svc: Services, **fields: object) -> int:
    data = {
        "name": "p95",
        "metric": "latency_p95",
        "comparator": ">",
        "threshold": 2000,
        "window": "5m",
        **fields,
    }
    rule = svc.config.alerts.add_rule(check_rule(data))
    assert rule.id is not None
    return rule.id


def test_a_per_tenant_rule_fires_for_the_breaching_tenant_only_and_notifies_once(
    svc: Services,
) -> None:
    contact = _contact(svc)
    rule_id = _rule(svc, per_tenant=True, contact_ids=[contact])
    svc.writer.write_sync(calls("apex-legal", [2500] * 10, at=NOW - timedelta(minutes=1)))
    svc.writer.write_sync(calls("techstart", [300] * 10, at=NOW - timedelta(minutes=1)))
    ev = Evaluator(svc.queries, svc.config)
    assert ev.run_once(NOW).rules == 1  # took the lease (at the test's own time)
    states = {i.key: i.state for i in svc.config.alerts.instances(rule_id)}
    assert states == {"apex-legal": "firing", "techstart": "ok"}
    due = svc.config.alerts.due_notifications(NOW + timedelta(minutes=1))
    assert [(o.key, o.payload["event"], o.payload["tenant_id"]) for o in due] == [
        ("apex-legal", "firing", "apex-legal")
    ]
    assert due[0].payload["value"] == "2,500 ms"
    # evaluated again (and by a restarted evaluator): still firing, nothing new to send
    Evaluator(svc.queries, svc.config).run_once(NOW + timedelta(seconds=30))
    assert len(svc.config.alerts.due_notifications(NOW + timedelta(minutes=1))) == 1
    # the window moves past the slow calls and fast ones arrive: resolved, notified
    later = NOW + timedelta(minutes=6)
    svc.writer.write_sync(calls("apex-legal", [200] * 10, at=later - timedelta(seconds=30)))
    ev.run_once(later)
    # techstart sent nothing in this window: no data (then dropped, as nothing fires)
    assert {i.key: i.state for i in svc.config.alerts.instances(rule_id)} == {
        "apex-legal": "ok",
        "techstart": "no_data",
    }
    ev.run_once(later + timedelta(seconds=60))
    assert [i.key for i in svc.config.alerts.instances(rule_id)] == ["apex-legal"]
    events = [o.payload["event"] for o in svc.config.alerts.due_notifications(later)]
    assert events == ["firing", "resolved"]
    changes = [
        (h.key, h.from_state, h.to_state) for h in svc.config.alerts.history(rule_id=rule_id)
    ]
    assert ("apex-legal", "firing", "ok") in changes and ("apex-legal", "ok", "firing") in changes


def test_the_figure_is_the_query_layers_and_scope_trace_reads_root_spans(svc: Services) -> None:
    svc.writer.write_sync(
        calls("apex-legal", [1000, 2000, 3000, 4000], at=NOW - timedelta(minutes=1))
    )
    span_rule = _rule(svc, metric="latency_avg", tenant_ids=["apex-legal"], threshold=1)
    cost_rule = _rule(svc, metric="cost", tenant_ids=["apex-legal"], threshold=1)
    Evaluator(svc.queries, svc.config).run_once(NOW)
    (avg,) = svc.config.alerts.instances(span_rule)
    assert avg.value == Decimal("2500.000") and avg.requests == 4
    (cost,) = svc.config.alerts.instances(cost_rule)
    day = TimeRange(NOW - timedelta(minutes=5), NOW)
    tenants = svc.queries.tenants(Scope.all(), day).items
    # priced by ingest (the catalog's gpt-4o price), summed as the tenants list sums it
    assert cost.value == tenants[0].cost_usd and cost.value > 0


def test_min_requests_turns_too_few_calls_into_no_data(svc: Services) -> None:
    rule_id = _rule(svc, tenant_ids=["apex-legal"], min_requests=5)
    svc.writer.write_sync(calls("apex-legal", [5000] * 4, at=NOW - timedelta(minutes=1)))
    Evaluator(svc.queries, svc.config).run_once(NOW)
    (inst,) = svc.config.alerts.instances(rule_id)
    assert inst.state == "no_data" and inst.requests == 4


def test_filters_select_the_calls_and_a_tier_selects_its_tenants(svc: Services) -> None:
    svc.config.set_tenant("apex-legal", tier="enterprise")
    svc.config.set_tenant("stratex", tier="professional")
    at = NOW - timedelta(minutes=1)
    svc.writer.write_sync(calls("apex-legal", [3000] * 5, at=at, model="o1"))
    svc.writer.write_sync(calls("apex-legal", [100] * 5, at=at, model="gpt-4o-mini"))
    svc.writer.write_sync(calls("stratex", [9000] * 5, at=at, model="o1"))
    rule_id = _rule(svc, tier="enterprise", per_tenant=True, filters={"model": "o1"})
    Evaluator(svc.queries, svc.config).run_once(NOW)
    assert [(i.key, i.state, i.value) for i in svc.config.alerts.instances(rule_id)] == [
        ("apex-legal", "firing", Decimal("3000.000"))
    ]


def test_budget_used_is_the_month_to_date_cost_over_the_tenants_budget(svc: Services) -> None:
    svc.writer.write_sync(calls("apex-legal", [100] * 20, at=NOW - timedelta(minutes=1)))
    month = TimeRange(NOW.replace(day=1, hour=0, minute=0, second=0), NOW)
    spent = svc.queries.tenants(Scope.all(), month).items[0].cost_usd
    assert spent is not None and spent > 0
    svc.config.set_tenant("apex-legal", monthly_budget_usd=(spent * Decimal("1.25")).normalize())
    rule_id = _rule(svc, metric="budget_used", per_tenant=True, threshold=80, warning=50)
    Evaluator(svc.queries, svc.config).run_once(NOW)
    (inst,) = svc.config.alerts.instances(rule_id)
    assert inst.value == Decimal("80.0000") and inst.state == "warning"


def test_one_evaluator_holds_the_lease_and_another_takes_over_when_it_stops(svc: Services) -> None:
    rule_id = _rule(svc, tenant_ids=["apex-legal"])
    first = Evaluator(svc.queries, svc.config, lease_ttl_s=30)
    second = Evaluator(svc.queries, svc.config, lease_ttl_s=30)
    assert first.tick() is not None
    assert second.tick() is None and not second.leading
    first.stop()  # releases the lease
    assert second.tick() is not None and second.leading
    assert svc.config.alerts.instances(rule_id)


def test_an_evaluator_that_lost_its_lease_stores_nothing(svc: Services) -> None:
    contact = _contact(svc)
    rule_id = _rule(svc, tenant_ids=["apex-legal"], contact_ids=[contact])
    svc.writer.write_sync(calls("apex-legal", [5000] * 3, at=NOW - timedelta(minutes=1)))
    stale = Evaluator(svc.queries, svc.config)
    assert stale.tick() is not None
    svc.config.alerts.delete_rule(rule_id)  # its first round's states go with it
    rule_id = _rule(svc, tenant_ids=["apex-legal"], contact_ids=[contact])
    # the lease passes to another process (say this one stalled past its expiry)
    svc.config.alerts.release_lease("alerts-evaluator", stale.holder)
    assert svc.config.alerts.acquire_lease("alerts-evaluator", "other", 30, NOW)
    rule = svc.config.alerts.get_rule(rule_id)
    assert rule is not None
    assert stale.evaluate(rule, NOW) == (1, 0)  # evaluated, but nothing stored or sent
    assert svc.config.alerts.instances(rule_id) == []
    assert svc.config.alerts.due_notifications(NOW + timedelta(hours=1)) == []


def test_changing_what_a_rule_measures_starts_its_states_over(svc: Services) -> None:
    rule_id = _rule(svc, tenant_ids=["apex-legal"])
    svc.writer.write_sync(calls("apex-legal", [5000] * 3, at=NOW - timedelta(minutes=1)))
    Evaluator(svc.queries, svc.config).run_once(NOW)
    assert svc.config.alerts.instances(rule_id)[0].state == "firing"
    rule = svc.config.alerts.get_rule(rule_id)
    assert rule is not None
    svc.config.alerts.replace_rule(rule_id, check_rule({"threshold": 9000}, base=rule))
    assert svc.config.alerts.instances(rule_id)  # a threshold change keeps states
    svc.config.alerts.replace_rule(rule_id, check_rule({"metric": "latency_p50"}, base=rule))
    assert svc.config.alerts.instances(rule_id) == []


def test_a_tenant_that_goes_quiet_fires_a_low_traffic_rule(svc: Services) -> None:
    rule_id = _rule(svc, metric="requests", comparator="<", threshold=5, per_tenant=True)
    svc.writer.write_sync(calls("apex-legal", [100.0] * 10, at=NOW - timedelta(minutes=1)))
    svc.writer.write_sync(calls("techstart", [100.0] * 10, at=NOW - timedelta(minutes=1)))
    ev = Evaluator(svc.queries, svc.config)
    ev.run_once(NOW)
    assert {i.key: i.state for i in svc.config.alerts.instances(rule_id)} == {
        "apex-legal": "ok",
        "techstart": "ok",
    }
    # ten minutes on, only techstart still sends: apex-legal's 0 requests fire the rule
    later = NOW + timedelta(minutes=10)
    svc.writer.write_sync(calls("techstart", [100.0] * 10, at=later - timedelta(minutes=1)))
    ev.run_once(later)
    states = {i.key: (i.state, i.value) for i in svc.config.alerts.instances(rule_id)}
    assert states == {"apex-legal": ("firing", Decimal(0)), "techstart": ("ok", Decimal(10))}


def test_a_quiet_tenant_with_nothing_to_say_is_dropped(svc: Services) -> None:
    rule_id = _rule(svc, metric="cost", threshold=100, per_tenant=True)
    svc.writer.write_sync(calls("apex-legal", [100.0] * 3, at=NOW - timedelta(minutes=1)))
    ev = Evaluator(svc.queries, svc.config)
    ev.run_once(NOW)
    assert [i.key for i in svc.config.alerts.instances(rule_id)] == ["apex-legal"]
    ev.run_once(NOW + timedelta(minutes=10))
    assert svc.config.alerts.instances(rule_id) == []
