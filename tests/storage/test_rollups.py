"""Rollups always agree with the records they summarise: after inserts, replacements
(attribution changes), compaction and rebuilds."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from tenantscope.records import UsageRecord
from tenantscope.storage import rollups
from tenantscope.storage.duckdb_events import DuckDBEventStore

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def random_records(rng: random.Random, n: int, prefix: str) -> list[UsageRecord]:
    out = []
    for i in range(n):
        start = T0 + timedelta(minutes=rng.randint(0, 60 * 48))
        llm = rng.random() < 0.7
        out.append(
            UsageRecord(
                event_id=f"{prefix}{i}",
                trace_id=f"{rng.randint(0, 50):032x}",
                span_id=f"{i:016x}",
                parent_span_id="" if rng.random() < 0.3 else f"{i + 1:016x}",
                kind="llm" if llm else "span",
                tenant_id=rng.choice(["a", "b", "c", ""]),
                session_id=rng.choice(["", "s1", "s2", "s3"]),
                input_tokens=rng.randint(0, 5000) if llm else 0,
                output_tokens=rng.randint(0, 500) if llm else 0,
                cost_usd=Decimal(rng.randint(0, 10**6)) / 10**9 if rng.random() < 0.9 else None,
                shadowed=rng.random() < 0.1,
                status=rng.choice(["ok", "ok", "ok", "error"]),  # type: ignore[arg-type]
                start_time=start,
                end_time=start,
                duration_ms=rng.uniform(1, 9000),
            )
        )
    return out


def snapshot(store: DuckDBEventStore) -> tuple[object, ...]:
    hourly = store.fetch(
        """SELECT tenant_id, hour, sum(spans) s, sum(roots) r, sum(requests) q,
               sum(input_tokens) i, sum(output_tokens) o, sum(cost_usd) c, sum(unpriced) u,
               sum(errors) e
           FROM rollup_hourly GROUP BY ALL HAVING sum(spans) <> 0 ORDER BY ALL"""
    )
    expected = store.fetch(
        f"""SELECT tenant_id, date_trunc('hour', start_time) AS hour, count(*) s,
               sum(CASE WHEN parent_span_id = '' THEN 1 ELSE 0 END) r,
               sum(CASE WHEN {rollups.COUNTED} THEN 1 ELSE 0 END) q,
               sum(CASE WHEN {rollups.COUNTED} THEN input_tokens ELSE 0 END) i,
               sum(CASE WHEN {rollups.COUNTED} THEN output_tokens ELSE 0 END) o,
               sum(CASE WHEN {rollups.COUNTED} THEN coalesce(cost_usd, 0) ELSE 0 END) c,
               sum(CASE WHEN {rollups.COUNTED} AND cost_usd IS NULL THEN 1 ELSE 0 END) u,
               sum(CASE WHEN {rollups.COUNTED} AND status = 'error' THEN 1 ELSE 0 END) e
           FROM records GROUP BY ALL ORDER BY ALL"""
    )
    assert hourly == expected
    lat = store.fetch(
        "SELECT tenant_id, hour, bucket, sum(n) n FROM rollup_latency GROUP BY ALL"
        " HAVING sum(n) <> 0 ORDER BY ALL"
    )
    lat_expected = store.fetch(
        f"""SELECT tenant_id, date_trunc('hour', start_time) AS hour,
               {rollups.latency_bucket()} AS bucket, count(*) n
           FROM records WHERE {rollups.COUNTED} GROUP BY ALL ORDER BY ALL"""
    )
    assert lat == lat_expected
    ses = store.fetch(
        "SELECT tenant_id, hour, session_id, sum(n) n FROM rollup_sessions GROUP BY ALL"
        " HAVING sum(n) <> 0 ORDER BY ALL"
    )
    ses_expected = store.fetch(
        """SELECT tenant_id, date_trunc('hour', start_time) AS hour, session_id, count(*) n
           FROM records WHERE session_id <> '' GROUP BY ALL ORDER BY ALL"""
    )
    assert ses == ses_expected
    return tuple(map(tuple, (hourly, lat, ses)))


def test_rollups_follow_inserts_updates_compaction_and_rebuild(tmp_path: Path) -> None:
    rng = random.Random(5)
    store = DuckDBEventStore(tmp_path / "e.duckdb")
    try:
        recs = random_records(rng, 400, "e")
        store.write(recs[:200])
        store.write(recs[200:])
        snapshot(store)
        # attribution changes: tenant moves, shadowing flips, session set
        updates = [
            r.replace(tenant_id="moved", shadowed=not r.shadowed, session_id="s9")
            for r in rng.sample(recs, 80)
        ]
        store.write(random_records(rng, 50, "f"), updates)
        before = snapshot(store)
        store.compact_rollups()
        assert snapshot(store) == before
        n_rows = store.fetch("SELECT count(*) AS n FROM rollup_hourly")[0]["n"]
        store.rebuild_rollups()
        assert snapshot(store) == before
        assert store.fetch("SELECT count(*) AS n FROM rollup_hourly")[0]["n"] == n_rows
    finally:
        store.close()


def test_rollups_are_rebuilt_for_a_file_written_without_them(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    store = DuckDBEventStore(path)
    store.write(random_records(random.Random(1), 100, "x"))
    # simulate a file from before rollups: drop them and their version marker
    for table in rollups.TABLES:
        store._conn.execute(f"DELETE FROM {table}")
    store._conn.execute("DELETE FROM tenantscope_meta WHERE key = 'rollups_version'")
    store.close()
    reopened = DuckDBEventStore(path)
    try:
        snapshot(reopened)
        assert reopened.fetch("SELECT count(*) AS n FROM rollup_hourly")[0]["n"] > 0
    finally:
        reopened.close()
