"""The ingest write-ahead log: segments on disk, and the writer answering from it."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from tenantscope.errors import Unavailable
from tenantscope.ingest import writer as writer_module
from tenantscope.ingest.wal import Logged, SegmentAppender, WriteAheadLog
from tenantscope.ingest.writer import BatchWriter
from tenantscope.storage.duckdb_events import DuckDBEventStore
from tenantscope.storage.serialize import records_to_arrow
from tests.ingest.test_otlp import request
from tests.server.test_ingest_http import PB, llm_span
from tests.test_cli import start_serve

from .test_writer import llm


def _table(first: int, n: int, tenant: str = "acme") -> pa.Table:
    records = [
        llm(f"t{i:030d}:s{i:014d}", f"t{i:030d}", f"s{i:014d}", "", tenant_id=tenant)
        for i in range(first, first + n)
    ]
    return records_to_arrow(records)


def _ids(tables: list[pa.Table]) -> list[str]:
    return [i for t in tables for i in t.column("event_id").to_pylist()]


def test_logged_tables_come_back_after_a_reopen_one_per_request(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path)
    a, b = _table(0, 3), _table(3, 2)
    wal.append([a])
    wal.append([b])
    # no close: as if the process died here
    again = WriteAheadLog(tmp_path)
    pending = list(again.pending())
    assert [t.num_rows for t in pending] == [3, 2]
    assert _ids(pending) == _ids([a, b])
    assert pending[0].equals(a)
    again.forget_pending()
    assert not list(tmp_path.glob("*.arrows"))
    assert list(WriteAheadLog(tmp_path).pending()) == []


def test_a_batch_cut_short_by_a_crash_is_not_read(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path)
    wal.append([_table(0, 3)])
    wal.append([_table(3, 4)])
    (segment,) = tmp_path.glob("*.arrows")
    data = segment.read_bytes()
    segment.write_bytes(data[: len(data) - 100])  # the second request's write cut
    pending = list(WriteAheadLog(tmp_path).pending())
    assert [t.num_rows for t in pending] == [3]
    # a segment cut before its first batch holds nothing
    segment.write_bytes(data[:10])
    assert list(WriteAheadLog(tmp_path).pending()) == []


def test_segments_go_once_closed_and_applied(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, segment_bytes=1)  # every append closes its segment
    first = wal.append([_table(0, 2)])
    second = wal.append([_table(2, 2), _table(4, 1)])
    assert first != second
    assert len(list(tmp_path.glob("*.arrows"))) == 2
    wal.applied(first, 1)
    assert len(list(tmp_path.glob("*.arrows"))) == 1
    wal.applied(second, 1)  # one of its two requests
    assert len(list(tmp_path.glob("*.arrows"))) == 1
    wal.applied(second, 1)
    assert not list(tmp_path.glob("*.arrows"))
    # the open segment stays until it is closed, then goes if applied
    big = WriteAheadLog(tmp_path)
    n = big.append([_table(10, 2)])
    big.applied(n, 1)
    assert len(list(tmp_path.glob("*.arrows"))) == 1
    big.close()
    assert not list(tmp_path.glob("*.arrows"))


def test_batches_a_worker_logged_are_read_back_and_their_segments_go_once_applied(
    tmp_path: Path,
) -> None:
    wal = WriteAheadLog(tmp_path)
    worker = SegmentAppender(tmp_path, "w1", segment_bytes=1)  # each batch closes its segment
    tables = [_table(0, 3), _table(3, 2), _table(5, 4)]
    logged = []
    for table in tables:
        segment, offset = worker.append(table)
        logged.append(Logged(segment, offset, table.num_rows, worker.take_closed()))
    # read back as the server does: the same rows
    read = [wal.adopt(item) for item in logged[:2]]  # the third request failed: not adopted
    assert [t.equals(orig) for t, orig in zip(read, tables, strict=False)] == [True, True]
    assert len(list(tmp_path.glob("*.arrows"))) == 3
    wal.applied(logged[0].segment, 1)
    assert not Path(logged[0].segment).exists()  # closed and applied
    wal.close()  # the unadopted batch was never answered; the unapplied one stays
    assert [p.name for p in tmp_path.glob("*.arrows")] == [Path(logged[1].segment).name]
    # a worker's open segment with several batches: each is found at its offset
    wal = WriteAheadLog(tmp_path / "b")
    worker = SegmentAppender(tmp_path / "b", "w2")
    first, second = (worker.append(t) for t in tables[:2])
    assert first[0] == second[0] and second[1] > first[1]
    got = wal.adopt(Logged(second[0], second[1], 2, ()))
    assert got.equals(tables[1])


def _stored_ids(store: DuckDBEventStore) -> list[str]:
    return [r["event_id"] for r in store.fetch("SELECT event_id FROM records ORDER BY 1")]


def test_the_writer_answers_once_logged_and_reads_wait_for_the_store(tmp_path: Path) -> None:
    store = DuckDBEventStore(tmp_path / "events.duckdb")
    wal = WriteAheadLog(tmp_path / "wal")
    w = BatchWriter(store, lambda r: None, wal=wal, linger=60.0)  # lingers for a minute
    w.start()
    try:
        table = _table(0, 5)
        began = time.monotonic()
        result = asyncio.run(w.write_table(table))
        assert result.accepted == 5
        assert _stored_ids(store) == []  # answered from the log, not stored yet
        assert len(list((tmp_path / "wal").glob("*.arrows"))) == 1
        asyncio.run(w.wait_applied())  # a reader: the writer stops lingering
        assert time.monotonic() - began < 30
        assert _stored_ids(store) == sorted(table.column("event_id").to_pylist())
        # sent again: stored once
        asyncio.run(w.write_table(_table(0, 5)))
        asyncio.run(w.wait_applied())
        assert len(_stored_ids(store)) == 5
    finally:
        w.stop()
        store.close()
    assert not list((tmp_path / "wal").glob("*.arrows"))  # a clean stop leaves no log


def test_a_read_waits_for_its_senders_writes_and_for_those_older_than_the_lag(
    tmp_path: Path,
) -> None:
    store = DuckDBEventStore(tmp_path / "events.duckdb")
    w = BatchWriter(store, lambda r: None, wal=WriteAheadLog(tmp_path / "wal"), linger=60.0)
    w.start()
    try:
        asyncio.run(w.write_table(_table(0, 3), sender="key-a"))
        # another reader, a minute of lag: nothing to wait for, the writer keeps lingering
        asyncio.run(w.wait_applied(reader="key-b", lag=60.0))
        assert _stored_ids(store) == []
        asyncio.run(w.wait_applied(reader=None, lag=60.0))
        assert _stored_ids(store) == []
        # the sender reads its own writes
        asyncio.run(w.wait_applied(reader="key-a", lag=60.0))
        assert len(_stored_ids(store)) == 3
        # answered longer ago than the lag: every reader waits for them
        asyncio.run(w.write_table(_table(3, 2), sender="key-a"))
        time.sleep(0.2)
        asyncio.run(w.wait_applied(reader="key-b", lag=0.1))
        assert len(_stored_ids(store)) == 5
        # no lag: every answered record
        asyncio.run(w.write_table(_table(5, 2), sender="key-a"))
        asyncio.run(w.wait_applied(reader="key-b"))
        assert len(_stored_ids(store)) == 7
        assert w._last_of == {}  # senders are forgotten once their writes are stored
    finally:
        w.stop()
        store.close()


def test_logged_spans_left_by_a_stopped_writer_are_stored_at_the_next_start(
    tmp_path: Path,
) -> None:
    wal_dir = tmp_path / "wal"
    WriteAheadLog(wal_dir).append([_table(0, 3), _table(3, 3)])  # as a killed server left it
    # spans of one trace over two requests: resolved together when applied
    root = llm("tr" + "0" * 30 + ":r", "tr" + "0" * 30, "r" * 16, "", tenant_id="apex", kind="span")
    child = llm("tr" + "0" * 30 + ":c", "tr" + "0" * 30, "c" * 16, "r" * 16, tenant_id="")
    WriteAheadLog(wal_dir).append([records_to_arrow([root]), records_to_arrow([child])])
    store = DuckDBEventStore(tmp_path / "events.duckdb")
    w = BatchWriter(store, lambda r: None, wal=WriteAheadLog(wal_dir))
    w.start()
    try:
        assert len(_stored_ids(store)) == 8
        inherited = store.fetch("SELECT tenant_id FROM records WHERE span_id = 'cccccccccccccccc'")
        assert inherited == [{"tenant_id": "apex"}]
        assert not list(wal_dir.glob("*.arrows"))
    finally:
        w.stop()
        store.close()


class _FailingStore(DuckDBEventStore):
    """A real store whose writes fail while ``failing`` is set (a full disk, say)."""

    failing = True

    def write(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        if self.failing:
            raise OSError("No space left on device")
        super().write(*args, **kwargs)  # type: ignore[arg-type]


def test_answered_spans_are_retried_until_the_store_takes_them(tmp_path: Path) -> None:
    store = _FailingStore(tmp_path / "events.duckdb")
    w = BatchWriter(store, lambda r: None, wal=WriteAheadLog(tmp_path / "wal"), linger=0.0)
    w.start()
    try:
        assert asyncio.run(w.write_table(_table(0, 4))).accepted == 4
        deadline = time.monotonic() + 10
        while w.apply_error is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert "No space left" in w.apply_error
        store.failing = False
        asyncio.run(w.wait_applied(timeout=20))
        assert len(_stored_ids(store)) == 4
        assert w.apply_error is None
    finally:
        w.stop()
        store.close()


def test_a_store_far_behind_makes_senders_wait_then_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "BACKPRESSURE_TIMEOUT_S", 0.5)
    store = _FailingStore(tmp_path / "events.duckdb")
    wal = WriteAheadLog(tmp_path / "wal")
    w = BatchWriter(store, lambda r: None, wal=wal, linger=0.0, max_unapplied=5)
    w.start()
    try:
        asyncio.run(w.write_table(_table(0, 6)))  # logged: now 6 rows behind
        with pytest.raises(Unavailable, match="behind by 6 records"):
            asyncio.run(w.write_table(_table(6, 1)))
    finally:
        w.stop()  # gives up retrying: the logged rows stay for the next start
        store.close()
    store = DuckDBEventStore(tmp_path / "events.duckdb")
    w = BatchWriter(store, lambda r: None, wal=WriteAheadLog(tmp_path / "wal"))
    w.start()
    try:
        assert len(_stored_ids(store)) == 6
    finally:
        w.stop()
        store.close()


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_killed_server_loses_no_answered_span(tmp_path: Path, workers: str) -> None:
    """A real server lingering for a minute answers spans from its log (written by the
    server, or by its decode worker); killed hard, the spans are in the log; the next
    start stores them, once."""
    data = tmp_path / "srv"
    env = {"TENANTSCOPE_INGEST_LINGER_MS": "60000", "TENANTSCOPE_INGEST_WORKERS": workers}
    proc, srv = start_serve(data, **env)
    url, auth = srv.url, srv.auth
    try:
        body = request([llm_span(i, tenant="crash-co") for i in range(1, 6)]).SerializeToString()
        resp = httpx.post(f"{url}/v1/traces", content=body, headers={**PB, **auth})
        assert resp.status_code == 200
        assert list((data / "wal").glob("*.arrows"))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(20)
    proc, srv = start_serve(data, **env)
    url, auth = srv.url, srv.auth
    try:
        usage = httpx.get(f"{url}/api/tenants/crash-co/usage", headers=auth).json()
        assert usage["request_count"] == 5
        # sent again after the restart: still five
        httpx.post(f"{url}/v1/traces", content=body, headers={**PB, **auth})
        usage = httpx.get(f"{url}/api/tenants/crash-co/usage", headers=auth).json()
        assert usage["request_count"] == 5
    finally:
        proc.terminate()
        proc.wait(20)
    assert not list((data / "wal").glob("*.arrows"))
