"""The counting rule and inheritance hold whatever order and batches spans arrive in."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from tenantscope.ingest.attribution import resolve_trace
from tenantscope.ingest.duplicates import resolve_duplicates
from tenantscope.records import UsageRecord

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
TRACE = "a" * 32


def span(
    sid: str,
    parent: str = "",
    *,
    kind: str = "span",
    tenant: str = "",
    user: str = "",
    tokens: int = 0,
    response_id: str = "",
    cost_source: str = "unknown",
    offset_ms: int = 0,
    model: str = "",
) -> UsageRecord:
    return UsageRecord(
        event_id=f"{TRACE}:{sid}",
        trace_id=TRACE,
        span_id=sid,
        parent_span_id=parent,
        name=f"span-{sid}",
        kind=kind,  # type: ignore[arg-type]
        tenant_id=tenant,
        user_id=user,
        input_tokens=tokens,
        response_id=response_id,
        model=model,
        cost_source=cost_source,  # type: ignore[arg-type]
        start_time=T0 + timedelta(milliseconds=offset_ms),
    )


def by_span(records: list[UsageRecord]) -> dict[str, UsageRecord]:
    return {r.span_id: r for r in records}


def test_descendants_inherit_tenant_user_session_from_ancestors() -> None:
    out = by_span(
        resolve_trace(
            [
                span("0000000000000001", tenant="apex-legal", user="u1"),
                span("0000000000000002", "0000000000000001"),
                span("0000000000000003", "0000000000000002", kind="llm", tokens=10, user="u9"),
            ]
        )
    )
    leaf = out["0000000000000003"]
    assert leaf.tenant_id == "apex-legal"
    assert leaf.user_id == "u9"  # its own value wins over the ancestor's
    assert leaf.inherited == ("tenant_id",)
    assert out["0000000000000002"].tenant_id == "apex-legal"
    assert out["0000000000000001"].inherited == ()


def test_wrapper_with_manual_usage_is_shadowed_by_the_auto_traced_call() -> None:
    out = by_span(
        resolve_trace(
            [
                span("0000000000000001", tenant="t"),
                span(
                    "0000000000000002",
                    "0000000000000001",
                    kind="llm",
                    tokens=100,
                    cost_source="reported",
                ),
                span("0000000000000003", "0000000000000002", kind="llm", tokens=100),
            ]
        )
    )
    assert out["0000000000000002"].shadowed
    assert not out["0000000000000003"].shadowed
    assert sum(r.input_tokens for r in out.values() if r.counted) == 100


def test_same_response_reported_by_two_sibling_instrumentations_counts_once() -> None:
    out = resolve_trace(
        [
            span("0000000000000001"),
            span("0000000000000002", "0000000000000001", kind="llm", tokens=5, response_id="r1"),
            span("0000000000000003", "0000000000000001", kind="llm", tokens=5, response_id="r1"),
            span("0000000000000004", "0000000000000001", kind="llm", tokens=7, response_id="r2"),
        ]
    )
    assert sum(r.input_tokens for r in out if r.counted) == 17  # the trace rules see two calls
    resolve_duplicates(out)  # the writer's pass over the batch and the stored copies
    assert sum(r.input_tokens for r in out if r.counted) == 12
    loser = by_span(out)["0000000000000003"]
    assert loser.shadow_reason == (
        f"duplicate of response r1: span 0000000000000002 of trace {TRACE} counts it"
    )


def test_a_call_span_without_usage_beside_its_usage_span_is_one_request() -> None:
    """Logfire's stream shape: the request span names the model, a later 'streaming
    response' span beside it carries the usage."""
    out = by_span(
        resolve_trace(
            [
                span("0000000000000001", tenant="t"),
                span("0000000000000002", "0000000000000001", kind="llm", model="gpt-4o-mini"),
                span(
                    "0000000000000003",
                    "0000000000000001",
                    kind="llm",
                    tokens=50,
                    model="gpt-4o-mini-2024-07-18",
                    offset_ms=900,
                ),
            ]
        )
    )
    assert [s for s, r in out.items() if r.counted] == ["0000000000000003"]
    assert out["0000000000000002"].shadow_reason == (
        "its call's usage is on span 0000000000000003 beside it"
    )


def test_usage_spans_pair_with_call_spans_in_order_and_failed_calls_still_count() -> None:
    calls = [
        span(f"{i:016x}", "00000000000000aa", kind="llm", model="gpt-4o", offset_ms=i * 100)
        for i in (1, 3, 5)
    ]
    usage = [
        span(
            f"{i:016x}",
            "00000000000000aa",
            kind="llm",
            tokens=10,
            model="gpt-4o",
            offset_ms=i * 100,
        )
        for i in (2, 4)
    ]
    failed = span("0000000000000009", "00000000000000aa", kind="llm", model="gpt-4o", offset_ms=1)
    failed.status = "error"
    root = span("00000000000000aa", tenant="t")
    out = by_span(resolve_trace([root, *calls, *usage, failed]))
    counted = sorted(s for s, r in out.items() if r.counted)
    # calls 1 and 3 are reported by usage spans 2 and 4; call 5 has none; the failure counts
    assert counted == sorted(
        ["0000000000000002", "0000000000000004", "0000000000000005", "0000000000000009"]
    )


def test_a_call_without_usage_under_a_span_with_usage_is_one_request() -> None:
    out = by_span(
        resolve_trace(
            [
                span("0000000000000001", tenant="t", kind="llm", tokens=30, cost_source="reported"),
                span("0000000000000002", "0000000000000001", kind="llm", model="gpt-4o"),
            ]
        )
    )
    assert [s for s, r in out.items() if r.counted] == ["0000000000000001"]
    assert out["0000000000000002"].shadow_reason == (
        "its call's usage is on the enclosing span 0000000000000001"
    )


def test_another_tenants_span_never_shadows_a_record() -> None:
    out = by_span(
        resolve_trace(
            [
                span("0000000000000001", tenant="b", kind="llm", tokens=30),
                span("0000000000000002", "0000000000000001", kind="llm", tokens=5, tenant="a"),
                span("0000000000000003", tenant="b", kind="llm", tokens=5, response_id="r"),
                span("0000000000000004", tenant="a", kind="llm", tokens=5, response_id="r"),
            ]
        )
    )
    resolve_duplicates(out.values())
    # b's call is not shadowed by a's span under it, and the copies of response r under
    # tenants a and b are not copies of each other
    assert all(r.counted for r in out.values())


def test_reresolution_restores_own_values_when_an_ancestor_changes() -> None:
    first = resolve_trace(
        [span("0000000000000001", tenant="a"), span("0000000000000002", "0000000000000001")]
    )
    assert by_span(first)["0000000000000002"].tenant_id == "a"
    # a middle span with its own tenant arrives later and sits between them
    child = by_span(first)["0000000000000002"].replace(parent_span_id="0000000000000003")
    again = by_span(
        resolve_trace(
            [
                by_span(first)["0000000000000001"],
                child,
                span("0000000000000003", "0000000000000001", tenant="b"),
            ]
        )
    )
    assert again["0000000000000002"].tenant_id == "b"
    assert again["0000000000000002"].inherited == ("tenant_id",)


def _tree(rng: random.Random, n: int) -> list[UsageRecord]:
    """A random trace: a root with the tenant, nested wrappers, LLM leaves, some wrappers
    with manual usage, a duplicated response."""
    spans = [span(f"{1:016x}", tenant="tenant-x", user="user-y")]
    for i in range(2, n + 1):
        parent = rng.choice(spans)
        kind = "llm" if rng.random() < 0.5 else "span"
        spans.append(
            span(
                f"{i:016x}",
                parent.span_id,
                kind=kind,
                tokens=rng.randint(1, 1000) if kind == "llm" else 0,
                response_id=f"resp-{i % 7}" if rng.random() < 0.2 else "",
            )
        )
    return spans


def _summary(records: list[UsageRecord]) -> tuple[object, ...]:
    return tuple(
        sorted(
            (r.event_id, r.tenant_id, r.user_id, r.inherited, r.shadowed, r.shadow_reason)
            for r in records
        )
    )


@pytest.mark.parametrize("seed", range(25))
def test_shuffled_split_batches_resolve_like_one_batch(seed: int) -> None:
    size = random.Random(seed).randint(2, 40)
    # resolve_trace works in place, so the reference run gets its own copies
    expected_records = resolve_trace(_tree(random.Random(seed), size))
    resolve_duplicates(expected_records)
    expected = _summary(expected_records)
    rng = random.Random(seed + 1000)
    shuffled = _tree(random.Random(seed), size)
    assert all(r.tenant_id == "" for r in shuffled[1:])  # nothing resolved yet
    rng.shuffle(shuffled)
    # arrive in several batches; each batch is resolved together with what is stored
    stored: dict[str, UsageRecord] = {}
    while shuffled:
        k = rng.randint(1, len(shuffled))
        batch, shuffled = shuffled[:k], shuffled[k:]
        resolved = resolve_trace([*stored.values(), *batch])
        resolve_duplicates(resolved)
        for r in resolved:
            stored[r.event_id] = r
    assert _summary(list(stored.values())) == expected
    counted_tokens = sum(r.input_tokens for r in stored.values() if r.counted)
    assert counted_tokens == sum(r.input_tokens for r in expected_records if r.counted)
    assert all(r.tenant_id == "tenant-x" for r in stored.values())
