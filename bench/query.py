"""Query-layer benchmark: the dashboard's reads over a large DuckDB event store.

    python bench/query.py                   # 10M spans, 1,000 Zipf tenants, 30 days
    python bench/query.py --rows 200000     # a quick run
    python bench/query.py --rootless 1      # every trace's root span missing (Langfuse 5)

The store file is generated once (bench/_synth.py, SQL inside DuckDB) and cached at --db;
reruns with the same --rows reuse it. Then the real ``Queries`` over the real
``DuckDBEventStore`` and ``SQLiteConfigStore`` are timed: median and p95 of --runs runs
after one warm-up run each, and the process's resident memory at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synth

from tenantscope.query.params import TimeRange
from tenantscope.query.queries import Queries
from tenantscope.query.scope import Scope
from tenantscope.storage.duckdb_events import DuckDBEventStore
from tenantscope.storage.sqlite_config import SQLiteConfigStore

GOALS_MS = {"tenants list, 7 days": 100.0, "tenant usage, 24 h": 10.0, "trace lookup": 10.0}
GOAL_RSS_MB = 500.0
MID_RANK = 30  # a mid-size tenant: ~0.5% of all traffic with 1,000 Zipf tenants


def _proc_status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _meta_path(db: Path) -> Path:
    return db.with_suffix(db.suffix + ".meta.json")


def _prepare(
    db: Path, rows: int, tenants: int, days: int, rootless: float, fresh: bool
) -> datetime:
    """Make sure ``db`` holds ``rows`` synthetic rows; return the data's end time."""
    meta = _meta_path(db)
    want = {"rows": rows, "tenants": tenants, "days": days, "rootless": rootless}
    if not fresh and db.exists() and meta.exists():
        known = json.loads(meta.read_text())
        if {k: known.get(k) for k in want} == want:
            print(f"reusing {db} ({rows:,} rows)")
            return datetime.fromisoformat(known["end"])
    for stale in (db, meta, db.with_suffix(db.suffix + ".wal")):
        stale.unlink(missing_ok=True)
    end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    print(f"generating {rows:,} spans, {tenants} tenants, {days} days into {db} ...")
    # in a child process, so that the peak memory reported below is the queries' alone
    subprocess.run(
        [sys.executable, __file__, "--generate-only", "--db", str(db), "--rows", str(rows),
         "--tenants", str(tenants), "--days", str(days), "--end", end.isoformat(),
         "--rootless", str(rootless)],
        check=True,
    )  # fmt: skip
    meta.write_text(json.dumps({**want, "end": end.isoformat()}))
    return end


def _generate(db: Path, rows: int, tenants: int, days: int, end: datetime, rootless: float) -> None:
    seconds = _synth.fill_event_store(
        db, rows, tenants=tenants, days=days, end=end, rootless=rootless
    )
    print(f"  generated in {seconds:.1f} s ({rows / seconds:,.0f} rows/s), "
          f"{db.stat().st_size / 2**20:,.0f} MiB on disk")  # fmt: skip


def _configure_tenants(config: SQLiteConfigStore, tenants: int) -> None:
    if len(config.list_tenants()) >= tenants:
        return
    tiers = ("enterprise", "professional", "starter")
    for rank in range(1, tenants + 1):
        tier = tiers[min(2, rank // 50)]
        config.set_tenant(
            _synth.tenant_id(rank),
            display_name=f"Customer {rank}",
            tier=tier,
            sla_p95_ms={"enterprise": 2000, "professional": 3000}.get(tier),
        )


def _time(fn: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    result = fn()  # warm-up: first touch of the file's blocks, plan caches
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - began) * 1000.0)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--rootless", type=float, default=0.0, help="share of traces without their root span"
    )
    parser.add_argument("--db", type=Path, default=None, help="cached store file")
    parser.add_argument("--fresh", action="store_true", help="regenerate even if cached")
    parser.add_argument("--memory-limit", default="200MB", help="DuckDB memory_limit")
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--end", type=datetime.fromisoformat, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    suffix = f"-rootless{args.rootless:g}" if args.rootless else ""
    db: Path = args.db or Path(f"/tmp/tenantscope-bench/query-{args.rows}{suffix}.duckdb")
    db.parent.mkdir(parents=True, exist_ok=True)
    if args.generate_only:
        _generate(db, args.rows, args.tenants, args.days, args.end, args.rootless)
        return 0
    end = _prepare(db, args.rows, args.tenants, args.days, args.rootless, args.fresh)

    config = SQLiteConfigStore(db.with_suffix(".config.sqlite"))
    _configure_tenants(config, args.tenants)
    opened = time.perf_counter()
    events = DuckDBEventStore(db, memory_limit=args.memory_limit)
    queries = Queries(events, config)
    print(f"opened the event store in {(time.perf_counter() - opened) * 1000:.0f} ms; "
          f"{events.count():,} rows")  # fmt: skip

    scope = Scope.all()
    week = TimeRange(end - timedelta(days=7), end)
    day = TimeRange(end - timedelta(hours=24), end)
    month = TimeRange(end - timedelta(days=args.days), end)
    mid = _synth.tenant_id(min(MID_RANK, args.tenants))
    # a trace from the middle of the data, found once outside the timings
    middle = end - timedelta(days=args.days / 2)
    found = events.fetch(
        "SELECT trace_id FROM records WHERE start_time >= :t ORDER BY start_time LIMIT 1",
        {"t": middle.replace(tzinfo=None)},
    )
    trace_id = found[0]["trace_id"]

    cases: list[tuple[str, Callable[[], Any]]] = [
        ("tenants list, 7 days", lambda: queries.tenants(scope, week, sort="cost")),
        (f"tenant usage, 24 h ({mid})", lambda: queries.tenant_usage(scope, mid, day)),
        ("trace lookup", lambda: queries.trace(scope, trace_id)),
        ("traces list, 7 days", lambda: queries.traces(scope, week)),
        (
            f"traces of one tenant, 7 days ({mid})",
            lambda: queries.traces(scope, week, tenant_id=mid),
        ),
        (
            "traces of one feature, 7 days",
            lambda: queries.traces(scope, week, feature=_synth.FEATURES[2]),
        ),
        (
            f"hourly cost series, {args.days} days",
            lambda: queries.timeseries(scope, month, "cost", "hour"),
        ),
    ]
    print(f"\n{'query':42s} {'median ms':>10s} {'p95 ms':>10s}  goal")
    failed = False
    for name, fn in cases:
        median, p95, result = _time(fn, args.runs)
        goal = next((g for k, g in GOALS_MS.items() if name.startswith(k)), None)
        verdict = ""
        if goal is not None:
            ok = median <= goal
            failed |= not ok
            verdict = f"<= {goal:.0f} ms {'ok' if ok else 'MISSED'}"
        print(f"{name:42s} {median:10.1f} {p95:10.1f}  {verdict}")
        _sanity(name, result)
    rss, hwm = _proc_status_mb("VmRSS"), _proc_status_mb("VmHWM")
    ok = hwm <= GOAL_RSS_MB
    failed |= not ok
    print(f"\nresident memory: VmRSS {rss:,.0f} MB, peak VmHWM {hwm:,.0f} MB"
          f"  (goal <= {GOAL_RSS_MB:.0f} MB {'ok' if ok else 'MISSED'})")  # fmt: skip
    events.close()
    config.close()
    return 1 if failed else 0


def _sanity(name: str, result: Any) -> None:
    """A fast wrong answer is no result: check each query returned real data."""
    if name.startswith("tenants list"):
        assert result.items and result.items[0].cost_usd > 0, result
    elif name.startswith("tenant usage"):
        assert result.request_count > 0, result
    elif name.startswith("trace lookup"):
        # a trace of a --rootless run lacks its root span
        assert result.spans in (_synth.SPANS_PER_TRACE - 1, _synth.SPANS_PER_TRACE), result
    elif name.startswith("traces"):
        assert result.items and result.items[0].spans >= _synth.SPANS_PER_TRACE - 1, result
    else:
        assert result.series and any(p.value for p in result.series[0].points), result


if __name__ == "__main__":
    raise SystemExit(main())
