"""The demo traffic generator: real OTLP protobuf bodies with the MeetingMind scenario."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tenantscope import semconv
from tenantscope.demo import DemoTenant, demo_batches, demo_tenants
from tenantscope.ingest.attribution import resolve_trace
from tenantscope.ingest.normalize import normalize_span
from tenantscope.ingest.otlp import decode_traces
from tenantscope.records import UsageRecord

NOW = datetime(2026, 3, 11, 15, 30, tzinfo=timezone.utc)
DAYS = 7
TENANT_KEYS = semconv.ACCEPT["tenant_id"]


def _attrs(span: Span) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        which = kv.value.WhichOneof("value")
        if which == "array_value":
            out[kv.key] = [v.string_value for v in kv.value.array_value.values]
        else:
            out[kv.key] = getattr(kv.value, which) if which else None
    return out


def _decode(bodies: list[bytes]) -> list[tuple[int, dict[str, Any], Span]]:
    """(batch index, resource attributes, span) for every span of every body."""
    out: list[tuple[int, dict[str, Any], Span]] = []
    for i, body in enumerate(bodies):
        request = ExportTraceServiceRequest.FromString(body)
        for rs in request.resource_spans:
            resource = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                assert ss.scope.name
                out.extend((i, resource, span) for span in ss.spans)
    return out


@pytest.fixture(scope="module")
def tenants() -> list[DemoTenant]:
    return demo_tenants(n_extra=20, seed=3)


@pytest.fixture(scope="module")
def bodies(tenants: list[DemoTenant]) -> list[bytes]:
    return list(demo_batches(tenants, days=DAYS, traces=600, seed=11, now=NOW, batch_spans=200))


@pytest.fixture(scope="module")
def spans(bodies: list[bytes]) -> list[tuple[int, dict[str, Any], Span]]:
    return _decode(bodies)


def test_tenants_named_three_and_a_skewed_tail() -> None:
    tenants = demo_tenants(n_extra=50, seed=7)
    assert len(tenants) == 53
    assert len({t.tenant_id for t in tenants}) == 53
    by_id = {t.tenant_id: t for t in tenants}
    apex = by_id["apex-legal"]
    assert (apex.display_name, apex.tier, apex.sla_p95_ms) == ("Apex Legal", "enterprise", 2000)
    stratex = by_id["stratex-consulting"]
    assert (stratex.display_name, stratex.tier, stratex.sla_p95_ms) == (
        "Stratex Consulting",
        "professional",
        3000,
    )
    techstart = by_id["techstart-inc"]
    assert (techstart.display_name, techstart.tier, techstart.sla_p95_ms) == (
        "TechStart Inc",
        "starter",
        None,
    )
    sla = {"enterprise": 2000, "professional": 3000, "starter": None}
    for t in tenants:
        assert t.sla_p95_ms == sla[t.tier]
        assert t.weight > 0
        assert t.tenant_id == t.tenant_id.lower() and " " not in t.tenant_id
        assert t.monthly_budget_usd is None or t.monthly_budget_usd > Decimal(0)
    assert {t.tier for t in tenants} == set(sla)
    assert any(t.monthly_budget_usd is None for t in tenants)
    assert any(t.rate_limit_rpm is not None for t in tenants[3:])
    weights = sorted((t.weight for t in tenants), reverse=True)
    assert weights[0] > 20 * weights[-1]  # a few big customers, a long tail
    assert demo_tenants(n_extra=50, seed=7) == tenants
    assert demo_tenants(n_extra=50, seed=8) != tenants
    assert len(demo_tenants(n_extra=0)) == 3


def test_batch_count_and_sizes(tenants: list[DemoTenant], bodies: list[bytes]) -> None:
    gen = demo_batches(tenants, days=DAYS, traces=600, seed=11, now=NOW, batch_spans=200)
    n = len(gen)  # known before any body is encoded (the progress bar's total)
    assert n == len(bodies) > 3
    assert gen.trace_count == 600
    sizes = Counter(i for i, _, _ in _decode(bodies))
    assert sum(sizes.values()) == gen.span_count
    # whole traces up to the size, plus the odd root carried over from the previous batch
    assert max(sizes.values()) <= 200 + 10
    assert min(sizes[i] for i in range(n - 1)) > 150


def test_deterministic_for_a_seed(tenants: list[DemoTenant], bodies: list[bytes]) -> None:
    again = list(demo_batches(tenants, days=DAYS, traces=600, seed=11, now=NOW, batch_spans=200))
    assert again == bodies
    other = list(demo_batches(tenants, days=DAYS, traces=600, seed=12, now=NOW, batch_spans=200))
    assert other != bodies


def test_span_ids_times_and_resource(spans: list[tuple[int, dict[str, Any], Span]]) -> None:
    lo = int((NOW - timedelta(days=DAYS)).timestamp() * 1e9)
    hi = int(NOW.timestamp() * 1e9)
    seen = set()
    for _, resource, span in spans:
        assert resource["service.name"] == "meetingmind-api"
        assert resource["deployment.environment"] == "production"
        assert len(span.trace_id) == 16 and any(span.trace_id)
        assert len(span.span_id) == 8 and any(span.span_id)
        assert span.parent_span_id == b"" or len(span.parent_span_id) == 8
        assert lo <= span.start_time_unix_nano <= span.end_time_unix_nano <= hi
        key = (span.trace_id, span.span_id)
        assert key not in seen
        seen.add(key)
    for _, _, span in spans:
        if span.parent_span_id:
            assert (span.trace_id, span.parent_span_id) in seen


def test_roots_carry_attribution_llm_children_inherit(
    tenants: list[DemoTenant], spans: list[tuple[int, dict[str, Any], Span]]
) -> None:
    by_id = {t.tenant_id: t for t in tenants}
    roots = [s for _, _, s in spans if not s.parent_span_id]
    assert len(roots) == 600
    root_tenants: Counter[str] = Counter()
    sessions: Counter[str] = Counter()
    for root in roots:
        a = _attrs(root)
        assert root.kind == Span.SPAN_KIND_SERVER
        assert root.name.startswith("POST /v1/")
        assert a[semconv.TENANT_ID] in by_id
        assert a[semconv.USER_ID].startswith(f"u-{a[semconv.TENANT_ID]}-")
        assert a[semconv.SESSION_ID]
        assert a[semconv.FEATURE] and a[semconv.BILLABLE_ACTION]
        assert a[semconv.CUSTOMER_VISIBLE_LABEL]
        root_tenants[a[semconv.TENANT_ID]] += 1
        sessions[a[semconv.SESSION_ID]] += 1
    assert {"apex-legal", "stratex-consulting", "techstart-inc"} <= set(root_tenants)
    assert "apex-legal" in {t for t, _ in root_tenants.most_common(3)}
    assert max(sessions.values()) > 1  # several requests per session

    llm = [s for _, _, s in spans if semconv.GEN_AI_OPERATION_NAME in _attrs(s)]
    assert len(llm) > len(roots)
    providers = Counter(_attrs(s)[semconv.GEN_AI_PROVIDER_NAME] for s in llm)
    assert {"openai", "anthropic", "gcp.gemini"} <= set(providers)
    for span in llm:
        a = _attrs(span)
        assert span.parent_span_id
        assert not any(k in a for k in TENANT_KEYS)
        assert semconv.USER_ID not in a and semconv.SESSION_ID not in a
        if span.status.code != 2:
            assert a[semconv.GEN_AI_USAGE_INPUT_TOKENS] > 0
            assert semconv.GEN_AI_RESPONSE_MODEL in a
    assert any(semconv.GEN_AI_USAGE_REASONING in _attrs(s) for s in llm)
    assert any(semconv.GEN_AI_USAGE_CACHE_READ in _attrs(s) for s in llm)
    assert any(semconv.GEN_AI_USAGE_CACHE_WRITE in _attrs(s) for s in llm)


def test_manual_usage_wrappers_errors_and_sla_breaches(
    tenants: list[DemoTenant], spans: list[tuple[int, dict[str, Any], Span]]
) -> None:
    children: dict[bytes, list[Span]] = defaultdict(list)
    for _, _, s in spans:
        children[s.parent_span_id].append(s)
    wrappers = [s for _, _, s in spans if semconv.GEN_AI_USAGE_COST in _attrs(s)]
    assert 20 <= len(wrappers) <= 120  # ~10% of 600 traces
    for w in wrappers:
        assert _attrs(w)[semconv.GEN_AI_USAGE_COST] >= 0
        assert any(semconv.GEN_AI_OPERATION_NAME in _attrs(c) for c in children[w.span_id])

    roots = [s for _, _, s in spans if not s.parent_span_id]
    failed = [r for r in roots if r.status.code == 2]
    assert 0.01 * len(roots) <= len(failed) <= 0.08 * len(roots)
    assert all(r.status.message for r in failed)

    sla = {t.tenant_id: t.sla_p95_ms for t in tenants}
    breaches = 0
    for root in roots:
        target = sla[_attrs(root)[semconv.TENANT_ID]]
        ms = (root.end_time_unix_nano - root.start_time_unix_nano) / 1e6
        flagged = [e for e in root.events if e.name == "sla-breach"]
        assert bool(flagged) == (target is not None and ms > target)
        breaches += bool(flagged)
    assert breaches > 0


def test_busier_in_business_hours(spans: list[tuple[int, dict[str, Any], Span]]) -> None:
    hours = Counter(
        datetime.fromtimestamp(s.start_time_unix_nano / 1e9, timezone.utc).hour
        for _, _, s in spans
        if not s.parent_span_id
    )
    day = sum(hours[h] for h in range(9, 17))
    night = sum(hours[h] for h in range(0, 8))
    assert day > 3 * night


def test_real_ingest_pipeline_counts_each_call_once(bodies: list[bytes]) -> None:
    """Decoded and normalised by the server's own ingest code, every counted call has a
    tenant (inherited from its root) and the manual usage wrappers are shadowed."""
    received = NOW + timedelta(seconds=1)
    by_trace: dict[str, list[UsageRecord]] = defaultdict(list)
    for body in bodies:
        decoded = decode_traces(body, "application/x-protobuf", None, max_bytes=64 << 20)
        assert decoded.rejected == 0, decoded.errors
        for raw in decoded.spans:
            record = normalize_span(raw, received_at=received)
            by_trace[record.trace_id].append(record)
    resolved = [r for records in by_trace.values() for r in resolve_trace(records)]
    counted = [r for r in resolved if r.counted]
    shadowed = [r for r in resolved if r.kind == "llm" and r.shadowed]
    assert counted and shadowed
    assert all(r.tenant_id and r.user_id and r.session_id and r.feature for r in counted)
    assert all(r.cost_source == "reported" for r in shadowed)
    assert {r.provider for r in counted} >= {"openai", "anthropic"}
    assert all(r.service == "meetingmind-api" and r.environment == "production" for r in counted)
    errors = [r for r in counted if r.status == "error"]
    assert errors and all(r.billable_state == "ignored" for r in errors)


def test_the_three_tiers_are_on_three_plans_from_the_start_of_the_data(tmp_path: Path) -> None:
    from tenantscope.billing.plans import plan_at
    from tenantscope.demo_plans import configure_plans
    from tenantscope.storage.sqlite_config import SQLiteConfigStore

    tenants = demo_tenants(n_extra=10, seed=7)
    config = SQLiteConfigStore(tmp_path / "config.db")
    try:
        since = NOW - timedelta(days=DAYS)  # 2026-03-04: its billing period began 03-01
        configure_plans(config, tenants, since)
        plans = {p.name: p for p in config.plans.list_plans()}
        assert sorted(plans) == ["enterprise", "professional", "starter"]
        assert plans["enterprise"].overage == "cost_plus"
        assert plans["enterprise"].margin_pct == Decimal(20)
        assert plans["professional"].included_action == "summary.generated"
        assert plans["professional"].unit_prices["action:summary.generated"] == Decimal("0.05")
        history = config.plans.list_assignments()
        assert len(history) == len(tenants)
        start = datetime(2026, 3, 1, tzinfo=timezone.utc)
        for t in tenants:
            assert plan_at(history, t.tenant_id, start) == plans[t.tier].id
            assert plan_at(history, t.tenant_id, start - timedelta(seconds=1)) is None
        # run again (a second `tenantscope demo`): nothing changes, nothing is added
        audited = len(config.list_audit(limit=1000))
        configure_plans(config, tenants, since + timedelta(days=1))
        assert config.plans.list_assignments() == history
        assert len(config.list_audit(limit=1000)) == audited
    finally:
        config.close()
