"""Synthetic data for the benchmarks: a DuckDB event store filled by SQL, and OTLP bodies.

``fill_event_store`` writes ``rows`` spans straight into the store's ``records`` table with
one ``INSERT ... SELECT ... FROM range(n)``: generating 10M rows inside DuckDB takes about a
minute, where building UsageRecords in Python would take far longer. The table itself is
created by ``DuckDBEventStore`` so the schema is exactly the store's.

Shape: traces of three spans (a root span and two LLM calls under it, attribution resolved
onto every row as ingest stores it), 1,000 tenants with Zipf (s = 1) traffic, spread evenly
over ``days`` days ending at ``end`` and inserted oldest first, as live ingest would (the
range is produced in order and DuckDB preserves insertion order by default).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

from tenantscope.records import RECORD_FIELDS
from tenantscope.storage.duckdb_events import DuckDBEventStore

SPANS_PER_TRACE = 3
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "gemini-2.5-flash")
# USD per million input / output tokens, for the synthetic catalog cost
PRICES = ((2.5, 10.0), (0.15, 0.6), (3.0, 15.0), (0.3, 2.5))
PROVIDERS = ("openai", "openai", "anthropic", "google")
FEATURES = ("meeting_summary", "action_items", "transcript_qa", "follow_up_email")


def tenant_id(rank: int) -> str:
    """The id of the tenant of Zipf rank ``rank`` (1 = biggest)."""
    return f"tenant-{rank:04d}"


def _list(values: tuple[str, ...] | tuple[float, ...]) -> str:
    return "[" + ", ".join(repr(v) for v in values) + "]"


def _insert_sql() -> str:
    # Per-trace values come from hash(t, k), per-span ones from hash(i, k): deterministic
    # for a seed and independent of DuckDB's thread scheduling.
    models, prices_in, prices_out = (
        _list(MODELS),
        _list(tuple(p[0] for p in PRICES)),
        _list(tuple(p[1] for p in PRICES)),
    )
    cols = {
        "event_id": "trace_id || ':' || span_id",
        "trace_id": "trace_id",
        "span_id": "span_id",
        "parent_span_id": "CASE WHEN s = 0 THEN '' ELSE root_id END",
        "name": "CASE WHEN s = 0 THEN 'POST /v1/' || feature ELSE 'chat ' || model END",
        "kind": "CASE WHEN s = 0 THEN 'span' ELSE 'llm' END",
        "tenant_id": "tenant",
        "workspace_id": "''",
        "user_id": "'u-' || rank || '-' || (ht >> 8) % (3 + 300 // rank)",
        "session_id": "'sess-' || rank || '-' || (ht >> 20) % (20 + 20000 // rank)",
        "feature": "feature",
        "billable_action": "feature || '.done'",
        "customer_visible_label": "feature",
        "environment": "'production'",
        "service": "'meetingmind-api'",
        "provider": f"CASE WHEN s = 0 THEN '' ELSE {_list(PROVIDERS)}[m] END",
        "model": "CASE WHEN s = 0 THEN '' ELSE model END",
        "operation": "CASE WHEN s = 0 THEN '' ELSE 'chat' END",
        "response_id": "CASE WHEN s = 0 THEN '' ELSE 'chatcmpl-' || span_id END",
        "input_tokens": "inp",
        "output_tokens": "outp",
        "cache_read_tokens": "0",
        "cache_write_tokens": "0",
        "reasoning_tokens": "0",
        "cost_usd": (
            f"CASE WHEN s = 0 THEN NULL ELSE CAST((inp * {prices_in}[m] + outp * "
            f"{prices_out}[m]) / 1e6 AS DECIMAL(38,12)) END"
        ),
        "cost_source": "CASE WHEN s = 0 THEN 'unknown' ELSE 'catalog' END",
        "price_version": "CASE WHEN s = 0 THEN '' ELSE 'genai-prices 0.2.3' END",
        "start_time": "start_time",
        "end_time": "start_time + to_milliseconds(dur)",
        "duration_ms": "dur",
        "ttft_ms": "NULL",
        "status": "CASE WHEN err THEN 'error' ELSE 'ok' END",
        "error_type": "CASE WHEN err THEN 'RateLimitError' ELSE '' END",
        "error_message": "CASE WHEN err THEN '429 rate limit exceeded' ELSE '' END",
        "billable_state": "CASE WHEN err THEN 'ignored' ELSE 'billable' END",
        "shadowed": "false",
        "inherited": (
            "CASE WHEN s = 0 THEN []::VARCHAR[] ELSE ['tenant_id', 'user_id', 'session_id',"
            " 'feature', 'billable_action', 'customer_visible_label'] END"
        ),
        "attributes": "'{}'",
        "events": "'[]'",
        "source": "'otlp'",
        "received_at": "start_time + to_milliseconds(dur) + INTERVAL 2 SECOND",
        "customer_id": "''",
        "usage_convention": "CASE WHEN s = 0 THEN '' ELSE 'otel-genai' END",
        "shadow_reason": "''",
    }
    missing = set(RECORD_FIELDS) ^ set(cols)
    if missing:  # records.py changed: the generator must be told about the new fields
        raise RuntimeError(f"synthetic generator and RECORD_FIELDS differ: {sorted(missing)}")
    select = ",\n        ".join(f"{cols[f]} AS {f}" for f in RECORD_FIELDS)
    return f"""
    INSERT INTO records
    WITH base AS (
        SELECT i, i // {SPANS_PER_TRACE} AS t, i % {SPANS_PER_TRACE} AS s,
               hash(i // {SPANS_PER_TRACE}, $seed) AS ht, hash(i, $seed + 1) AS hs
        FROM range($n) r(i)
    ), shaped AS (
        SELECT *,
            -- continuous Zipf(s=1) over 1..$tenants: P(rank <= r) = ln(r + 1) / ln(N + 1)
            least($tenants, greatest(1, floor(exp(((ht % 1000003) / 1000003.0)
                * ln($tenants + 1.0)))::BIGINT)) AS rank,
            lpad(lower(hex(ht)), 16, '0') || lpad(lower(hex(hash(t, $seed + 2))), 16, '0')
                AS trace_id,
            lpad(lower(hex(hs)), 16, '0') AS span_id,
            lpad(lower(hex(hash(t * {SPANS_PER_TRACE}, $seed + 1))), 16, '0') AS root_id,
            (1 + (hs >> 24) % {len(MODELS)})::BIGINT AS m,
            {_list(FEATURES)}[(1 + (ht >> 40) % {len(FEATURES)})::BIGINT] AS feature,
            $start + to_microseconds((t * $span_us // $traces + s * 3000)::BIGINT)
                AS start_time,
            (hs >> 50) % 100 < 2 AND s > 0 AS err
        FROM base
    ), valued AS (
        SELECT *,
            'tenant-' || lpad(rank::VARCHAR, 4, '0') AS tenant,
            {models}[m] AS model,
            CASE WHEN s = 0 OR err THEN 0 ELSE 400 + (hs >> 8) % 9000 END AS inp,
            CASE WHEN s = 0 OR err THEN 0 ELSE 40 + (hs >> 32) % 700 END AS outp,
            CASE WHEN s = 0 THEN 900.0 + (ht >> 12) % 2600
                 ELSE 250.0 + (hs >> 40) % 1400 END AS dur
        FROM shaped
    )
    SELECT
        {select}
    FROM valued
    -- a share of the traces lose their root span, as when Langfuse 5 filters plain-OTel
    -- parent spans out of its export: their spans' parent is never stored
    WHERE s > 0 OR (ht >> 4) % 1000 >= $rootless_permille
    """


def fill_event_store(
    path: Path,
    rows: int,
    *,
    tenants: int = 1000,
    days: int = 30,
    end: datetime | None = None,
    seed: int = 1,
    rootless: float = 0.0,
) -> float:
    """Create the store at ``path`` and append ``rows`` synthetic spans (fewer by the root
    spans of the ``rootless`` share of traces, which are left out); return seconds."""
    store = DuckDBEventStore(path)  # creates the records table exactly as the server would
    store.close()
    end_t = (end or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None)
    start_t = end_t - timedelta(days=days)
    traces = max(1, rows // SPANS_PER_TRACE)
    began = time.perf_counter()
    con = duckdb.connect(str(path))
    try:
        con.execute(
            _insert_sql(),
            {
                "n": rows,
                "seed": seed,
                "tenants": tenants,
                "start": start_t,
                "span_us": days * 86_400_000_000,
                "traces": traces,
                "rootless_permille": round(rootless * 1000),
            },
        )
        con.execute("CHECKPOINT")
    finally:
        con.close()
    # the bulk insert bypassed write(), so build the hourly rollups the server keeps
    store = DuckDBEventStore(path)
    try:
        store.rebuild_rollups()
    finally:
        store.close()
    return time.perf_counter() - began
