"""The group-commit writer against a real DuckDB file: idempotency, order independence,
pricing of new records."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from tenantscope.ingest.writer import BatchWriter
from tenantscope.records import UsageRecord
from tenantscope.server.services import Services

T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)


def llm(event: str, trace: str, sid: str, parent: str, **kw: object) -> UsageRecord:
    base: dict[str, object] = dict(
        event_id=event,
        trace_id=trace,
        span_id=sid,
        parent_span_id=parent,
        kind="llm",
        provider="openai",
        model="gpt-4o",
        input_tokens=1000,
        output_tokens=100,
        start_time=T0,
        end_time=T0 + timedelta(seconds=1),
        duration_ms=1000.0,
    )
    base.update(kw)
    return UsageRecord(**base)  # type: ignore[arg-type]


def worker_table(svc: Services, request: list[UsageRecord]) -> pa.Table:
    """Copies of a request's records resolved and priced as a decode worker hands them
    to the writer (traces resolved within the request, then an Arrow table)."""
    from tenantscope.ingest.attribution import resolve_trace
    from tenantscope.storage.serialize import records_to_arrow

    mine = [r.replace() for r in request]
    by_trace: dict[str, list[UsageRecord]] = {}
    for r in mine:
        by_trace.setdefault(r.trace_id, []).append(r)
    for group in by_trace.values():
        resolve_trace(group)
    for r in mine:
        svc.price(r)
    return records_to_arrow(mine)


def counted_totals(svc: Services) -> tuple[int, int]:
    row = svc.events.fetch(
        "SELECT count(*) AS n, coalesce(sum(input_tokens), 0) AS tokens FROM records"
        " WHERE kind = 'llm' AND NOT shadowed"
    )[0]
    return int(row["n"]), int(row["tokens"])


def test_same_records_sent_twice_and_concurrently_are_stored_once(services: Services) -> None:
    recs = [llm(f"e{i}", "", "", "", tenant_id="t1") for i in range(50)]
    first = services.writer.write_sync(recs)
    assert (first.accepted, first.duplicates) == (50, 0)
    again = services.writer.write_sync(recs[:10])
    assert (again.accepted, again.duplicates) == (0, 10)
    # many concurrent senders of the same new ids
    new = [llm(f"n{i}", "", "", "", tenant_id="t1") for i in range(30)]
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(services.writer.write_sync(new)))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.accepted for r in results) == 30
    assert services.events.count() == 80
    assert counted_totals(services) == (80, 80_000)


def test_new_records_are_priced_from_the_catalog(services: Services) -> None:
    services.writer.write_sync([llm("p1", "", "", "", tenant_id="t")])
    row = services.events.fetch("SELECT cost_usd, cost_source FROM records")[0]
    assert row["cost_source"] == "catalog"
    # gpt-4o: $2.50 / 1M input, $10 / 1M output
    assert row["cost_usd"] * 10**6 == 1000 * 2.5 + 100 * 10


def test_trace_in_shuffled_batches_counts_each_call_once(services: Services) -> None:
    trace = "b" * 32
    root = UsageRecord(
        event_id=f"{trace}:r",
        trace_id=trace,
        span_id="1" * 16,
        name="POST /summarize",
        tenant_id="apex-legal",
        user_id="u1",
        session_id="s1",
        start_time=T0,
        end_time=T0 + timedelta(seconds=2),
    )
    wrapper = llm(
        f"{trace}:w",
        trace,
        "2" * 16,
        "1" * 16,
        cost_usd=None,
        input_tokens=1000,
        cost_source="reported",
    ).replace(cost_usd=__import__("decimal").Decimal("0.5"))
    call = llm(f"{trace}:c", trace, "3" * 16, "2" * 16)
    other = llm(f"{trace}:o", trace, "4" * 16, "1" * 16, model="gpt-4o-mini")
    spans = [root, wrapper, call, other]
    rng = random.Random(3)
    for _ in range(3):
        rng.shuffle(spans)
    services.writer.write_sync(spans[:1])
    services.writer.write_sync(spans[1:3])
    services.writer.write_sync(spans[3:])
    rows = {
        r["span_id"]: r
        for r in services.events.fetch(
            "SELECT span_id, tenant_id, user_id, shadowed, kind FROM records WHERE trace_id = :t",
            {"t": trace},
        )
    }
    assert {r["tenant_id"] for r in rows.values()} == {"apex-legal"}
    assert rows["2" * 16]["shadowed"] is True
    assert counted_totals(services) == (2, 2000)


def test_writer_not_running_refuses(services: Services) -> None:
    w = BatchWriter(services.events, services.price)
    fut = w.submit([llm("x", "", "", "")])
    assert fut.exception() is not None


def test_retry_windows_for_explicit_and_arrival_stamped_times(services: Services) -> None:
    base = llm("r1", "", "", "", tenant_id="t")
    assert services.writer.write_sync([base]).accepted == 1
    # same id, timestamp re-computed by a retry minutes later: a duplicate
    shifted = base.replace(start_time=base.start_time + timedelta(minutes=3))
    assert services.writer.write_sync([shifted]).duplicates == 1
    # an event stamped on arrival (no timestamp sent) is recognised hours later too
    now = datetime.now(timezone.utc)
    stamped = llm("r2", "", "", "", tenant_id="t", start_time=now, received_at=now)
    assert services.writer.write_sync([stamped]).accepted == 1
    later = now + timedelta(hours=5)
    again = stamped.replace(start_time=later, received_at=later)
    assert services.writer.write_sync([again]).duplicates == 1
    assert services.events.count() == 2


def _trace_spans(rng: random.Random, traces: int) -> list[UsageRecord]:
    """Traces of a root (carrying the tenant) and 1-3 LLM calls that inherit it."""
    spans: list[UsageRecord] = []
    for t in range(traces):
        trace = f"{t + 1:032x}"
        root = f"{t + 1:08x}00000000"
        spans.append(
            UsageRecord(
                event_id=f"{trace}:{root}",
                trace_id=trace,
                span_id=root,
                name="request",
                tenant_id=f"tenant-{t % 3}",
                user_id=f"u{t}",
                start_time=T0 + timedelta(minutes=t),
                end_time=T0 + timedelta(minutes=t, seconds=2),
                duration_ms=2000.0,
            )
        )
        for c in range(rng.randint(1, 3)):
            sid = f"{t + 1:08x}{c + 1:08x}"
            spans.append(
                llm(f"{trace}:{sid}", trace, sid, root, start_time=T0 + timedelta(minutes=t))
            )
    return spans


def _stored(svc: Services) -> list[tuple[object, ...]]:
    return [
        tuple(r.values())
        for r in svc.events.fetch(
            "SELECT event_id, tenant_id, user_id, shadowed, cost_usd, cost_source, input_tokens"
            " FROM records ORDER BY event_id"
        )
    ]


def _rollup_totals(svc: Services) -> list[tuple[object, ...]]:
    return [
        tuple(r.values())
        for r in svc.events.fetch(
            "SELECT tenant_id, sum(spans) AS s, sum(requests) AS q, sum(input_tokens) AS i,"
            " sum(cost_usd) AS c FROM rollup_hourly GROUP BY tenant_id"
            " HAVING sum(spans) <> 0 ORDER BY tenant_id"  # delta rows of moved spans sum to 0
        )
    ]


@pytest.mark.parametrize(
    ("linger_ms", "resend"),
    [(0.0, True), (500.0, True), (500.0, False)],
    ids=["batch-per-request", "one-batch", "one-batch-no-copies"],
)
def test_tables_and_records_paths_store_the_same_and_keep_rollups_exact(
    tmp_path: object, linger_ms: float, resend: bool
) -> None:
    """Spans of a trace split over requests, some re-sent: the decode workers' path (priced
    Arrow tables, resolved per request) and the records path store the same rows, and the
    rollups kept incrementally (rewritten spans leave them with their stored figures)
    equal rollups rebuilt from the records."""
    import asyncio
    from pathlib import Path

    from tests.conftest import make_settings

    base = Path(str(tmp_path))
    plain = Services.open(make_settings(base / "plain", ingest_workers=0))
    # a batch per request goes column-wise when it can (BatchWriter._write_tables)
    tables = Services.open(
        make_settings(base / "tables", ingest_workers=0, ingest_linger_ms=linger_ms)
    )
    try:
        rng = random.Random(5)
        spans = _trace_spans(rng, 40)
        rng.shuffle(spans)
        requests: list[list[UsageRecord]] = []
        while spans:
            n = rng.randint(1, 12)
            requests.append(spans[:n])
            spans = spans[n:]
        if resend:
            requests += [requests[1], requests[4][:2]]  # re-sent: duplicates
        for req in requests:
            records = [r.replace() for r in req]
            assert plain.writer.write_sync(records).accepted >= 0
            asyncio.run(tables.writer.write_table(worker_table(tables, req)))
        asyncio.run(tables.writer.wait_applied())  # answered once logged; stored next
        assert _stored(tables) == _stored(plain)
        assert counted_totals(tables) == counted_totals(plain)
        for svc in (plain, tables):
            incremental = _rollup_totals(svc)
            svc.events.rebuild_rollups()
            assert _rollup_totals(svc) == incremental
    finally:
        plain.close()
        tables.close()
