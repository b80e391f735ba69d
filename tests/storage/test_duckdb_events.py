"""DuckDBEventStore: the EventStore contract plus DuckDB-specific behaviour."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from tenantscope import errors
from tenantscope.records import RECORD_FIELDS
from tenantscope.storage.duckdb_events import DuckDBEventStore, render_params
from tests.storage.contract_events import T0, EventStoreContract, make_record, make_records


@pytest.fixture
def make_event_store(tmp_path: Path) -> Callable[[], DuckDBEventStore]:
    path = tmp_path / "data" / "events.duckdb"
    return lambda: DuckDBEventStore(path, threads=2)


class TestDuckDBEventStoreContract(EventStoreContract):
    pass


@pytest.fixture
def store(make_event_store: Callable[[], DuckDBEventStore]) -> Iterator[DuckDBEventStore]:
    s = make_event_store()
    yield s
    s.close()


# -- parameter rendering -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "params", "expected", "used"),
    [
        ("a = :x AND b = :y", {"x": 1, "y": 2}, "a = $x AND b = $y", {"x": 1, "y": 2}),
        ("a::VARCHAR = :x", {"x": 1, "VARCHAR": 9}, "a::VARCHAR = $x", {"x": 1}),
        ("':x' = :x", {"x": 1}, "':x' = $x", {"x": 1}),
        ("'it''s :x' || :x", {"x": 1}, "'it''s :x' || $x", {"x": 1}),
        ('"col:x" = :x', {"x": 1}, '"col:x" = $x', {"x": 1}),
        ("-- :x\n:x", {"x": 1}, "-- :x\n$x", {"x": 1}),
        ("/* :x */ :x", {"x": 1}, "/* :x */ $x", {"x": 1}),
        ("{'a': 1} AND :unknown", {"x": 1}, "{'a': 1} AND :unknown", {}),
        (":x_1 :x", {"x": 1, "x_1": 2}, "$x_1 $x", {"x": 1, "x_1": 2}),
        ("a = :x", None, "a = :x", {}),
    ],
)
def test_render_params(
    sql: str, params: dict[str, int] | None, expected: str, used: dict[str, int]
) -> None:
    assert render_params(sql, params) == (expected, used)


def test_render_params_makes_aware_times_naive_utc() -> None:
    from datetime import timezone

    _, used = render_params(":t", {"t": T0.astimezone(timezone(timedelta(hours=-7)))})
    assert used["t"] == T0.replace(tzinfo=None)


def test_fetch_keeps_casts(store: DuckDBEventStore) -> None:
    store.write([make_record(0)])
    rows = store.fetch(
        "SELECT cost_usd::VARCHAR AS c, input_tokens::DOUBLE AS f FROM records WHERE event_id = :e",
        {"e": make_record(0).event_id},
    )
    assert rows == [{"c": "0.004512345678", "f": 1000.0}]


def test_fetch_arrow(store: DuckDBEventStore) -> None:
    store.write(make_records(5))
    table = store.fetch_arrow(
        "SELECT event_id, cost_usd FROM records WHERE start_time < :end ORDER BY start_time",
        {"end": T0 + timedelta(seconds=3)},
    )
    assert isinstance(table, pa.Table)
    assert table.column("event_id").to_pylist() == [r.event_id for r in make_records(3)]
    assert table.schema.field("cost_usd").type == pa.decimal128(38, 12)


def test_fetch_list_param(store: DuckDBEventStore) -> None:
    store.write(make_records(8))
    rows = store.fetch(
        "SELECT DISTINCT tenant_id FROM records WHERE tenant_id IN (SELECT unnest(:ids)) "
        "ORDER BY tenant_id",
        {"ids": ("tenant-1", "tenant-3", "nobody")},
    )
    assert [r["tenant_id"] for r in rows] == ["tenant-1", "tenant-3"]


# -- schema ------------------------------------------------------------------------------


def test_schema_columns_and_types(store: DuckDBEventStore) -> None:
    rows = store.fetch(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'records' ORDER BY ordinal_position"
    )
    assert tuple(r["column_name"] for r in rows) == RECORD_FIELDS
    types = {r["column_name"]: r["data_type"] for r in rows}
    assert types["cost_usd"] == "DECIMAL(38,12)"
    assert types["start_time"] == "TIMESTAMP"
    assert types["input_tokens"] == "BIGINT"
    assert types["shadowed"] == "BOOLEAN"
    assert types["inherited"] == "VARCHAR[]"
    assert types["attributes"] == "VARCHAR"
    assert types["duration_ms"] == "DOUBLE"


def test_no_key_or_index_slows_appends(store: DuckDBEventStore) -> None:
    assert store.fetch("SELECT * FROM duckdb_indexes() WHERE table_name = 'records'") == []
    assert (
        store.fetch(
            "SELECT * FROM duckdb_constraints() WHERE table_name = 'records' "
            "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
        )
        == []
    )


def test_unknown_cost_is_null(store: DuckDBEventStore) -> None:
    store.write([make_record(0, cost_usd=None)])
    assert store.fetch("SELECT count(*) AS n FROM records WHERE cost_usd IS NULL") == [{"n": 1}]


def test_times_are_stored_as_utc_wall_clock(store: DuckDBEventStore) -> None:
    store.write([make_record(0)])
    rows = store.fetch("SELECT start_time FROM records")
    assert rows[0]["start_time"] == T0.replace(tzinfo=None)


def test_a_foreign_records_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE records (id INTEGER)")
    con.close()
    with pytest.raises(errors.ConfigError, match="columns"):
        DuckDBEventStore(path)


def test_a_store_of_an_earlier_version_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    store = DuckDBEventStore(path)
    store.write([make_record(0, tenant_id="t-old")])
    store.close()
    added = ("customer_id", "usage_convention", "shadow_reason")
    con = duckdb.connect(str(path))
    for name in added:  # the table as the first release made it
        con.execute(f"ALTER TABLE records DROP COLUMN {name}")
    con.close()
    store = DuckDBEventStore(path)
    try:
        rows = store.fetch(f"SELECT tenant_id, {', '.join(added)} FROM records")
        assert rows == [{"tenant_id": "t-old", **dict.fromkeys(added, "")}]
        store.write([make_record(1, tenant_id="t-new", customer_id="c-1")])
        got = store.fetch("SELECT customer_id FROM records WHERE tenant_id = 't-new'")
        assert got == [{"customer_id": "c-1"}]
    finally:
        store.close()


def test_the_trace_index_stays_right_and_is_built_for_older_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tenantscope.storage import lookup_index

    monkeypatch.setattr(lookup_index, "SORT_EVERY", 4)  # the sorted copy is made often
    path = tmp_path / "idx.duckdb"
    store = DuckDBEventStore(path)
    recs = make_records(36)
    for i in range(0, 36, 2):
        store.write(recs[i : i + 2])
    want = {
        t: (min(r.start_time for r in recs if r.trace_id == t).replace(tzinfo=None),
            max(r.start_time for r in recs if r.trace_id == t).replace(tzinfo=None))
        for t in {r.trace_id for r in recs}
    }  # fmt: skip
    assert {t: store.trace_bounds(t) for t in want} == want
    # the look-up reads the sorted copy for the rows it covers: with those index rows gone
    # behind its back, every trace is still found; rows written since come from the index
    sorted_rows = store.fetch("SELECT count(*) AS n FROM trace_sorted")[0]["n"]
    assert 0 < sorted_rows < len(want)
    store._conn.execute("DELETE FROM trace_index WHERE seq <= $upto", {"upto": store._sorted_upto})
    assert {t: store.trace_bounds(t) for t in want} == want
    store.close()
    store = DuckDBEventStore(path)  # reopened: the copy and the rows since are found again
    assert {t: store.trace_bounds(t) for t in want} == want
    store.close()
    con = duckdb.connect(str(path))  # a store of a version before the indexes
    con.execute("DROP TABLE trace_index")
    con.execute("DROP TABLE response_index")
    con.execute("DROP TABLE trace_sorted")
    con.execute("DELETE FROM tenantscope_meta WHERE key = 'lookup_index_version'")
    con.close()
    store = DuckDBEventStore(path)
    try:
        assert {t: store.trace_bounds(t) for t in want} == want
    finally:
        store.close()


def test_in_memory_store() -> None:
    store = DuckDBEventStore(":memory:")
    try:
        store.write(make_records(3))
        assert store.count() == 3
    finally:
        store.close()


def test_use_after_close_is_unavailable(store: DuckDBEventStore) -> None:
    store.close()
    with pytest.raises(errors.Unavailable):
        store.count()


# -- durability --------------------------------------------------------------------------

_CRASH_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from tenantscope.storage.duckdb_events import DuckDBEventStore
    from tests.storage.contract_events import make_records
    store = DuckDBEventStore(sys.argv[1], threads=1)
    recs = make_records(600)
    for i in range(0, 600, 200):
        store.write(recs[i : i + 200])
    print("written", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "crash.duckdb"
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", _CRASH_SCRIPT, str(path)],
        cwd=repo,
        # the repo for ``tests``, then the parent's own path (a git worktree's src/ must win
        # over the installed checkout's, or the child writes another schema)
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(repo), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.strip() == "written"
    store = DuckDBEventStore(path)
    try:
        assert store.count() == 600
        assert store.fetch("SELECT sum(cost_usd) AS c FROM records")[0]["c"] == sum(
            (r.cost_usd or Decimal(0) for r in make_records(600)), Decimal(0)
        )
    finally:
        store.close()
