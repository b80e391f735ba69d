"""Hourly per-tenant rollups kept beside the records, in the same transactions.

The tenants list, tenant totals and time series read these instead of scanning millions of
records; only the partial hours at the edges of a time range are read from ``records``, so
sums and counts stay exact. Percentiles come from a latency histogram with buckets 2% wide
(so p50/p95 in lists are within 1% of the exact value); the SLA report stays exact.

Rows are inserted in hour order so that zone maps on ``hour`` skip everything outside a
query's range. Every write adds *delta* rows: +1 per inserted record, -1 per replaced
record's old version followed by +1 for its new version. Deltas are compacted (summed per
key) from time to time. Readers always aggregate (``sum``), so compaction never changes an
answer.

Tables (part of the EventStore contract: every backend keeps them):

- ``rollup_hourly(tenant_id, hour, spans, roots, requests, input_tokens, output_tokens,
  cost_usd, unpriced, errors, first_seen, last_seen)``: ``roots`` counts spans without a
  parent (one per trace); ``requests`` and the token, cost, unpriced and error figures
  count only counted LLM calls (the counting rule).
- ``rollup_latency(tenant_id, hour, bucket, n)``: counted LLM calls per latency bucket.
- ``rollup_sessions(tenant_id, hour, session_id, n)``: records per session.
"""

from __future__ import annotations

# A record counts towards requests, tokens and cost when it is an LLM call that no more
# specific record of its trace shadows (DESIGN.md, "the counting rule").
COUNTED = "(kind = 'llm' AND NOT shadowed)"

# Latency buckets: bucket b holds durations in [BASE^b, BASE^(b+1)) ms.
LATENCY_BASE = 1.02


def latency_bucket(expr: str = "duration_ms") -> str:
    return f"CAST(floor(ln(greatest({expr}, 0.001)) / ln({LATENCY_BASE})) AS INTEGER)"


def bucket_value(expr: str) -> str:
    """The representative latency (geometric middle) of a bucket, in ms."""
    return f"pow({LATENCY_BASE}, {expr} + 0.5)"


HOURLY_COLUMNS = (
    "tenant_id, hour, spans, roots, requests, input_tokens, output_tokens, cost_usd,"
    " unpriced, errors, first_seen, last_seen"
)

# One delta row per record, in rollup_hourly's columns (summed by the caller).
HOURLY_ROW = f"""
    tenant_id,
    date_trunc('hour', start_time) AS hour,
    1 AS spans,
    CASE WHEN parent_span_id = '' THEN 1 ELSE 0 END AS roots,
    CASE WHEN {COUNTED} THEN 1 ELSE 0 END AS requests,
    CASE WHEN {COUNTED} THEN input_tokens ELSE 0 END AS input_tokens,
    CASE WHEN {COUNTED} THEN output_tokens ELSE 0 END AS output_tokens,
    CASE WHEN {COUNTED} THEN coalesce(cost_usd, 0) ELSE 0 END AS cost_usd,
    CASE WHEN {COUNTED} AND cost_usd IS NULL THEN 1 ELSE 0 END AS unpriced,
    CASE WHEN {COUNTED} AND status = 'error' THEN 1 ELSE 0 END AS errors,
    start_time AS first_seen,
    start_time AS last_seen"""

LATENCY_ROW = f"""
    tenant_id,
    date_trunc('hour', start_time) AS hour,
    {latency_bucket()} AS bucket,
    1 AS n"""

SESSION_ROW = """
    tenant_id,
    date_trunc('hour', start_time) AS hour,
    session_id,
    1 AS n"""

CREATE = (
    """CREATE TABLE IF NOT EXISTS rollup_hourly (
        tenant_id VARCHAR, hour TIMESTAMP, spans BIGINT, roots BIGINT, requests BIGINT,
        input_tokens BIGINT, output_tokens BIGINT, cost_usd DECIMAL(38,12), unpriced BIGINT,
        errors BIGINT, first_seen TIMESTAMP, last_seen TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS rollup_latency (
        tenant_id VARCHAR, hour TIMESTAMP, bucket INTEGER, n BIGINT)""",
    """CREATE TABLE IF NOT EXISTS rollup_sessions (
        tenant_id VARCHAR, hour TIMESTAMP, session_id VARCHAR, n BIGINT)""",
)
TABLES = ("rollup_hourly", "rollup_latency", "rollup_sessions")


def delta_inserts(source: str, sign: int = 1) -> list[str]:
    """Statements adding the delta rows of the records in ``source`` (a table or a
    parenthesised query with the record columns), multiplied by ``sign``."""
    return _signed_deltas(f"(SELECT *, {int(sign)} AS _sign FROM {source} x)")


def delta_inserts_replacing(new: str, old: str) -> list[str]:
    """Statements adding, in one pass per table, the delta rows of the records in ``new``
    (+1) and of the stored versions they replace in ``old`` (-1): both tables have the
    record columns. Half the statements of ``delta_inserts`` twice, which matters per
    batch on the writer's path."""
    return _signed_deltas(
        f"(SELECT *, 1 AS _sign FROM {new} UNION ALL SELECT *, -1 AS _sign FROM {old})"
    )


def _signed_deltas(src: str) -> list[str]:
    """The delta statements over ``src``: record columns plus ``_sign`` (+1 or -1)."""
    return [
        f"""INSERT INTO rollup_hourly
            SELECT tenant_id, hour, sum(spans * _sign), sum(roots * _sign),
                sum(requests * _sign), sum(input_tokens * _sign), sum(output_tokens * _sign),
                sum(cost_usd * _sign), sum(unpriced * _sign), sum(errors * _sign),
                min(first_seen), max(last_seen)
            FROM (SELECT {HOURLY_ROW}, _sign FROM {src} s) d
            GROUP BY tenant_id, hour ORDER BY hour, tenant_id""",
        f"""INSERT INTO rollup_latency
            SELECT tenant_id, hour, bucket, sum(n * _sign)
            FROM (SELECT {LATENCY_ROW}, _sign FROM {src} s WHERE {COUNTED}) d
            GROUP BY tenant_id, hour, bucket ORDER BY hour, tenant_id""",
        f"""INSERT INTO rollup_sessions
            SELECT tenant_id, hour, session_id, sum(n * _sign)
            FROM (SELECT {SESSION_ROW}, _sign FROM {src} s WHERE session_id <> '') d
            GROUP BY tenant_id, hour, session_id ORDER BY hour, tenant_id""",
    ]


def compact(since_param: str = "$since") -> list[str]:
    """Statements folding the delta rows of hours >= ``since`` into one row per key and
    dropping keys that sum to nothing. Run inside one transaction."""
    return [
        f"""CREATE TEMP TABLE _c_hourly AS
            SELECT tenant_id, hour, sum(spans) AS spans, sum(roots) AS roots,
                sum(requests) AS requests, sum(input_tokens) AS input_tokens,
                sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost_usd,
                sum(unpriced) AS unpriced, sum(errors) AS errors,
                min(first_seen) AS first_seen, max(last_seen) AS last_seen
            FROM rollup_hourly WHERE hour >= {since_param} GROUP BY tenant_id, hour""",
        f"DELETE FROM rollup_hourly WHERE hour >= {since_param}",
        "INSERT INTO rollup_hourly SELECT * FROM _c_hourly WHERE spans <> 0"
        " ORDER BY hour, tenant_id",
        "DROP TABLE _c_hourly",
        f"""CREATE TEMP TABLE _c_latency AS
            SELECT tenant_id, hour, bucket, sum(n) AS n
            FROM rollup_latency WHERE hour >= {since_param} GROUP BY tenant_id, hour, bucket""",
        f"DELETE FROM rollup_latency WHERE hour >= {since_param}",
        "INSERT INTO rollup_latency SELECT * FROM _c_latency WHERE n <> 0 ORDER BY hour, tenant_id",
        "DROP TABLE _c_latency",
        f"""CREATE TEMP TABLE _c_sessions AS
            SELECT tenant_id, hour, session_id, sum(n) AS n
            FROM rollup_sessions WHERE hour >= {since_param}
            GROUP BY tenant_id, hour, session_id""",
        f"DELETE FROM rollup_sessions WHERE hour >= {since_param}",
        "INSERT INTO rollup_sessions SELECT * FROM _c_sessions WHERE n <> 0"
        " ORDER BY hour, tenant_id",
        "DROP TABLE _c_sessions",
    ]
