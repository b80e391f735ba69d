"""Copies of one provider response count once across traces, whatever order and requests
they arrive in, through the writer and a real DuckDB store (both ingest paths)."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from pathlib import Path

import pytest

from tenantscope.ingest.duplicates import DUPLICATE, preference, resolve_duplicates
from tenantscope.records import UsageRecord
from tenantscope.server.services import Services
from tests.conftest import make_settings
from tests.ingest.test_writer import T0, _rollup_totals, llm, worker_table

FULL = {"input_tokens": 5050, "output_tokens": 420, "cache_read_tokens": 3000}
PLAIN = {"input_tokens": 5050, "output_tokens": 420}


def _calls(rng: random.Random) -> tuple[list[UsageRecord], set[str]]:
    """Spans of several calls, most reported more than once in traces of their own, and
    the event ids that must count."""
    spans: list[UsageRecord] = []
    counted: set[str] = set()
    trace_no = 0

    def trace() -> str:
        nonlocal trace_no
        trace_no += 1
        return f"{trace_no:032x}"

    for c in range(8):
        tenant = ("acme", "globex")[c % 2]
        start = T0 + timedelta(seconds=c)
        copies: list[UsageRecord] = []
        for variant in rng.sample(["full", "plain", "plain", "bare"], rng.randint(1, 3)):
            t = trace()
            root = f"{trace_no:016x}"
            usage = FULL if variant == "full" else PLAIN if variant == "plain" else {}
            if rng.random() < 0.5:
                # the tenant on an app span above the call (inherited)
                spans.append(
                    UsageRecord(
                        event_id=f"{t}:{'f' * 16}",
                        trace_id=t,
                        span_id="f" * 16,
                        name="request",
                        tenant_id=tenant,
                        start_time=start,
                        end_time=start + timedelta(seconds=2),
                    )
                )
                parent, own_tenant = "f" * 16, ""
            else:
                parent, own_tenant = "", tenant
            fields: dict[str, object] = {
                "input_tokens": 0,
                "output_tokens": 0,
                "provider": "anthropic",
                "model": "claude-sonnet-4-5-20250929",
                "response_id": f"msg_{c}",
                "tenant_id": own_tenant,
                "start_time": start,
                "usage_convention": "openllmetry" if usage else "",
                **usage,
            }
            copies.append(llm(f"{t}:{root}", t, root, parent, **fields))
        spans += copies
        resolved = [r.replace(tenant_id=tenant) for r in copies]
        counted.add(min(resolved, key=preference).event_id)
        if c == 0:
            # the same response id under another tenant is another tenant's call
            t = trace()
            other = llm(
                f"{t}:{'1' * 16}",
                t,
                "1" * 16,
                "",
                provider="anthropic",
                response_id="msg_0",
                tenant_id="initech",
                start_time=start,
                **PLAIN,
            )
            spans.append(other)
            counted.add(other.event_id)
    return spans, counted


def _requests(rng: random.Random, spans: list[UsageRecord]) -> list[list[UsageRecord]]:
    spans = spans[:]
    rng.shuffle(spans)
    requests = []
    while spans:
        n = rng.randint(1, 6)
        requests.append(spans[:n])
        spans = spans[n:]
    if rng.random() < 0.5:
        requests.append(requests[0])  # a re-sent request
    return requests


def _send(svc: Services, request: list[UsageRecord], tables: bool) -> None:
    if not tables:
        svc.writer.write_sync([r.replace() for r in request])
        return
    asyncio.run(svc.writer.write_table(worker_table(svc, request)))
    asyncio.run(svc.writer.wait_applied())


def _counted(svc: Services) -> set[str]:
    rows = svc.events.fetch("SELECT event_id FROM records WHERE kind = 'llm' AND NOT shadowed")
    return {r["event_id"] for r in rows}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    ("tables", "linger_ms"),
    [(False, 0.0), (True, 0.0), (True, 500.0)],
    ids=["records", "tables-batch-per-request", "tables-one-batch"],
)
def test_copies_count_once_whatever_the_order_and_requests(
    tmp_path: Path, seed: int, tables: bool, linger_ms: float
) -> None:
    spans, expected = _calls(random.Random(seed))
    svc = Services.open(
        make_settings(tmp_path / "data", ingest_workers=0, ingest_linger_ms=linger_ms)
    )
    try:
        for request in _requests(random.Random(seed + 100), spans):
            _send(svc, request, tables)
        asyncio.run(svc.writer.wait_applied())
        assert _counted(svc) == expected
        losers = svc.events.fetch(
            "SELECT response_id, shadow_reason FROM records WHERE kind = 'llm' AND shadowed"
        )
        assert losers and all(
            r["shadow_reason"].startswith(f"{DUPLICATE}{r['response_id']}: span ") for r in losers
        )
        incremental = _rollup_totals(svc)
        svc.events.rebuild_rollups()
        assert _rollup_totals(svc) == incremental
    finally:
        svc.close()


def _copy(trace: str, hours: float, usage: dict[str, int]) -> UsageRecord:
    """A report of response r of tenant acme, in a trace of its own."""
    start = T0 + timedelta(hours=hours)
    return llm(f"{trace}:1", trace * 32, "1" * 16, "", tenant_id="acme", response_id="r",
               start_time=start, **usage)  # fmt: skip


def test_a_later_more_complete_copy_takes_over_and_the_stored_one_steps_down(
    tmp_path: Path,
) -> None:
    svc = Services.open(make_settings(tmp_path / "data", ingest_workers=0))
    try:
        svc.writer.write_sync([_copy("a", 0, PLAIN)])
        assert _counted(svc) == {"a:1"}
        # hours later, in another trace: a copy with the cache figures
        svc.writer.write_sync([_copy("b", 3, FULL)])
        assert _counted(svc) == {"b:1"}
        reason = svc.events.fetch("SELECT shadow_reason FROM records WHERE event_id = 'a:1'")
        span, trace = "1" * 16, "b" * 32
        assert reason == [
            {"shadow_reason": f"duplicate of response r: span {span} of trace {trace} counts it"}
        ]
        # beyond the window (24 h) a copy is another call
        svc.writer.write_sync([_copy("c", 30, FULL)])
        assert _counted(svc) == {"b:1", "c:1"}
    finally:
        svc.close()


def test_resolve_duplicates_prefers_usage_then_detail_then_reported_cost() -> None:
    def copy(event: str, **kw: object) -> UsageRecord:
        return llm(event, event, "1" * 16, "", tenant_id="t", response_id="r", **kw)

    bare = copy("1", input_tokens=0, output_tokens=0)
    plain = copy("2", **PLAIN)
    full = copy("3", **FULL)
    for order in ([bare, plain, full], [full, plain, bare], [plain, full, bare]):
        for r in order:
            r.shadowed, r.shadow_reason = False, ""
        resolve_duplicates(order)
        assert [r.event_id for r in order if r.counted] == ["3"]
    reported = copy("4", cost_source="reported", **FULL)
    group = [full, reported]
    resolve_duplicates(group)
    assert [r.event_id for r in group if r.counted] == ["4"]
