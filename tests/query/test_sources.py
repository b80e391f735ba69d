"""Row sources over the rollups: exact for any range, and a range's edge hours read
records only for the tenants whose records there straddle an end of the range."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tenantscope.query.params import TimeRange
from tenantscope.query.scope import Scope
from tenantscope.query.sources import (
    Sources,
    TenantFilter,
    exact_sources,
    sources,
    straddling_keys,
)
from tenantscope.records import UsageRecord
from tenantscope.storage import rollups
from tenantscope.storage.duckdb_events import DuckDBEventStore
from tests.storage.test_rollups import T0, random_records


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBEventStore]:
    s = DuckDBEventStore(tmp_path / "e.duckdb")
    yield s
    s.close()


def _from_sources(store: DuckDBEventStore, src: Sources) -> tuple[tuple[dict[str, Any], ...], ...]:
    hourly = store.fetch(
        f"""SELECT tenant_id, sum(spans) s, sum(roots) r, sum(requests) q,
               sum(input_tokens) i, sum(cost_usd) c, sum(unpriced) u, sum(errors) e
            FROM {src.hourly} h GROUP BY ALL HAVING sum(spans) <> 0 ORDER BY ALL""",
        src.params,
    )
    lat = store.fetch(
        f"SELECT tenant_id, bucket, sum(n) n FROM {src.latency} l GROUP BY ALL"
        " HAVING sum(n) <> 0 ORDER BY ALL",
        src.params,
    )
    ses = store.fetch(
        f"SELECT tenant_id, session_id, sum(n) n FROM {src.sessions} s GROUP BY ALL"
        " HAVING sum(n) <> 0 ORDER BY ALL",
        src.params,
    )
    return tuple(map(tuple, (hourly, lat, ses)))


def _from_records(
    store: DuckDBEventStore, rng: TimeRange
) -> tuple[tuple[dict[str, Any], ...], ...]:
    a, b = rng.naive()
    where = "start_time >= :a AND start_time < :b"
    p = {"a": a, "b": b}
    hourly = store.fetch(
        f"""SELECT tenant_id, count(*) s,
               sum(CASE WHEN parent_span_id = '' THEN 1 ELSE 0 END) r,
               sum(CASE WHEN {rollups.COUNTED} THEN 1 ELSE 0 END) q,
               sum(CASE WHEN {rollups.COUNTED} THEN input_tokens ELSE 0 END) i,
               sum(CASE WHEN {rollups.COUNTED} THEN coalesce(cost_usd, 0) ELSE 0 END) c,
               sum(CASE WHEN {rollups.COUNTED} AND cost_usd IS NULL THEN 1 ELSE 0 END) u,
               sum(CASE WHEN {rollups.COUNTED} AND status = 'error' THEN 1 ELSE 0 END) e
            FROM records WHERE {where} GROUP BY ALL ORDER BY ALL""",
        p,
    )
    lat = store.fetch(
        f"""SELECT tenant_id, {rollups.latency_bucket()} AS bucket, count(*) n FROM records
            WHERE {where} AND {rollups.COUNTED} GROUP BY ALL ORDER BY ALL""",
        p,
    )
    ses = store.fetch(
        f"""SELECT tenant_id, session_id, count(*) n FROM records
            WHERE {where} AND session_id <> '' GROUP BY ALL ORDER BY ALL""",
        p,
    )
    return tuple(map(tuple, (hourly, lat, ses)))


def test_sources_equal_a_raw_scan_for_any_range_after_replacements(
    store: DuckDBEventStore,
) -> None:
    rng = random.Random(7)
    recs = random_records(rng, 600, "e")
    store.write(recs[:300])
    store.write(recs[300:])
    # replaced versions leave -1 delta rows whose first/last times stay in the min/max
    store.write([], [r.replace(tenant_id="moved", session_id="s9") for r in rng.sample(recs, 90)])
    ranges = [TimeRange(T0 + timedelta(hours=5), T0 + timedelta(hours=9))]  # aligned
    for _ in range(60):
        a = T0 + timedelta(seconds=rng.randint(-3600, 50 * 3600))
        ranges.append(TimeRange(a, a + timedelta(seconds=rng.randint(1, 30 * 3600))))
    for minutes in (1, 7, 59, 61):  # inside one hour, or just over
        a = T0 + timedelta(hours=3, minutes=rng.randint(0, 50))
        ranges.append(TimeRange(a, a + timedelta(minutes=minutes)))
    for window in ranges:
        expected = _from_records(store, window)
        assert _from_sources(store, exact(store, window)) == expected, window
        # and with every edge hour read from records (many straddling keys)
        assert _from_sources(store, sources(window, TenantFilter())) == expected, window
        # a filter adding tenant clauses straddles on the same keys, of its tenants only
        # (the tenants list reuses its keys for the page it shows)
        keys = straddling_keys(store.fetch, window, TenantFilter())
        page = TenantFilter().add("list_contains(:page, tenant_id)", page=["a", "moved"])
        assert keys is not None
        mine = sorted(k for k in keys if k[0] in ("a", "moved"))
        assert sorted(straddling_keys(store.fetch, window, page) or []) == mine, window
    # and narrowed by a tenant, as the tenant portal reads
    window = ranges[7]
    only_a = exact(store, window, TenantFilter.of(Scope.tenant("a")))
    expected = [[r for r in part if r["tenant_id"] == "a"] for part in _from_records(store, window)]
    assert [list(part) for part in _from_sources(store, only_a)] == expected


def test_edge_hours_read_rollups_for_tenants_wholly_inside_the_range(
    store: DuckDBEventStore,
) -> None:
    # a range ending now reads this hour's rollup rows, not its records: proved by
    # removing the records behind the rollups' back (the figures stay); a tenant whose
    # records straddle the range's start is read from records (its figure follows them)
    hour = T0 + timedelta(hours=10)
    recs: list[UsageRecord] = []
    base = random_records(random.Random(4), 6, "r")
    for i, r in enumerate(base):
        tenant = "inside" if i < 3 else "straddles"
        minute = 20 + i if tenant == "inside" else (5 if i == 3 else 25 + i)
        start = hour + timedelta(minutes=minute)
        recs.append(r.replace(tenant_id=tenant, start_time=start, end_time=start))
    store.write(recs)
    window = TimeRange(hour + timedelta(minutes=10), hour + timedelta(minutes=45))
    before = _from_sources(store, exact(store, window))
    assert before == _from_records(store, window)
    store._conn.execute("DELETE FROM records")
    after = dict(_spans(store, exact(store, window)))
    assert after == {"inside": 3}  # rollup rows; "straddles" now has no records in range


def exact(store: DuckDBEventStore, window: TimeRange, tf: TenantFilter | None = None) -> Sources:
    return exact_sources(store.fetch, window, tf or TenantFilter())


def _spans(store: DuckDBEventStore, src: Sources) -> list[tuple[str, int]]:
    rows = store.fetch(
        f"SELECT tenant_id, sum(spans) AS n FROM {src.hourly} h GROUP BY ALL"
        " HAVING sum(spans) <> 0",
        src.params,
    )
    return [(r["tenant_id"], int(r["n"])) for r in rows]
