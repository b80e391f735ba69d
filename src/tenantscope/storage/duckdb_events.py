"""The embedded EventStore: one DuckDB file owned by the server process.

Layout: a single ``records`` table whose columns are exactly ``records.RECORD_FIELDS``
(the query layer writes SQL against it). There is no primary key or unique index: DuckDB's
ART index makes appends collapse at millions of rows (DESIGN.md "Stores"). Exact
idempotency instead relies on a duplicate carrying its original's ``start_time``, so id
look-ups are bounded by a time range and zone maps skip almost all row groups.

Types: ids and other strings VARCHAR; token counts BIGINT; ``cost_usd`` DECIMAL(38,12),
NULL when unknown; times TIMESTAMP holding naive UTC (aware UTC on the Python side);
``inherited`` VARCHAR[]; ``attributes``/``events`` JSON text in VARCHAR.

Threads: one DuckDB connection, one cursor per thread. Writes are serialised by a lock and
run in one transaction each, so a reader never sees half a batch.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tenantscope import errors
from tenantscope.records import RECORD_FIELDS, UsageRecord
from tenantscope.storage import lookup_index, rollups
from tenantscope.storage.base import Dialect, EventStore
from tenantscope.storage.serialize import (
    BOOL_FIELDS,
    DECIMAL_FIELDS,
    FLOAT_FIELDS,
    INT_FIELDS,
    LIST_FIELDS,
    STRING_FIELDS,
    TIME_FIELDS,
    arrow_to_records,
    records_to_arrow,
    to_utc_naive,
)

SCHEMA_VERSION = "1"
ROLLUPS_VERSION = "1"
# Fold rollup delta rows after this many written records (see storage/rollups.py).
COMPACT_EVERY_RECORDS = 100_000
EXPORT_FORMATS: tuple[str, ...] = ("csv", "parquet")


def _column_type(name: str) -> str:
    if name in INT_FIELDS:
        return "BIGINT"
    if name in FLOAT_FIELDS:
        return "DOUBLE"
    if name in TIME_FIELDS:
        return "TIMESTAMP"
    if name in DECIMAL_FIELDS:
        return "DECIMAL(38,12)"
    if name in BOOL_FIELDS:
        return "BOOLEAN"
    if name in LIST_FIELDS:
        return "VARCHAR[]"
    return "VARCHAR"


def _column_default(name: str) -> str:
    """What rows stored before a column existed hold in it (the record's default)."""
    if name in STRING_FIELDS:
        return "''"
    raise errors.ConfigError(f"no default for a new {name} column: give it one here")


_COLUMNS = ", ".join(RECORD_FIELDS)
_CREATE_RECORDS = (
    "CREATE TABLE IF NOT EXISTS records (\n"
    + ",\n".join(f"    {name} {_column_type(name)}" for name in RECORD_FIELDS)
    + "\n)"
)
# The stored versions of the rows a write replaces (``_ts_keys``), for their rollup deltas.
_REPLACED = (
    "(SELECT records.* FROM records JOIN _ts_keys k "
    "ON records.start_time = k.start_time AND records.event_id = k.event_id "
    "AND records.trace_id = k.trace_id "
    "WHERE records.start_time BETWEEN $lo AND $hi)"
)
_CREATE_META = "CREATE TABLE IF NOT EXISTS tenantscope_meta (key VARCHAR, value VARCHAR)"


# Exports flatten what a spreadsheet cannot show and label times as UTC explicitly.
def _export_column(name: str, fmt: str) -> str:
    if fmt == "parquet":
        return f"timezone('UTC', {name}) AS {name}" if name in TIME_FIELDS else name
    # CSV: text a spreadsheet reads as it is (RFC 3339 UTC times, plain decimals, lists
    # joined by commas)
    if name in TIME_FIELDS:
        return f"strftime({name}, '%Y-%m-%dT%H:%M:%S.%fZ') AS {name}"
    if name in DECIMAL_FIELDS:
        return f"CAST({name} AS VARCHAR) AS {name}"
    if name in LIST_FIELDS:
        return f"array_to_string({name}, ',') AS {name}"
    return name


_EXPORT_SELECT = {
    fmt: ", ".join(_export_column(n, fmt) for n in RECORD_FIELDS) for fmt in EXPORT_FORMATS
}
# An export reads and sorts this much time at once, and hands on this many rows at a time.
EXPORT_WINDOW = timedelta(hours=1)
EXPORT_BATCH_ROWS = 20_000


def _export_writer(path: str, fmt: str, schema: pa.Schema) -> pq.ParquetWriter | pacsv.CSVWriter:
    if fmt == "parquet":
        return pq.ParquetWriter(path, schema, compression="zstd")
    return pacsv.CSVWriter(path, schema, write_options=pacsv.WriteOptions(quoting_style="needed"))


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def render_params(
    sql: str, params: Mapping[str, Any] | None, placeholder: str = "${name}"
) -> tuple[str, dict[str, Any]]:
    """Rewrite ``:name`` parameters into a backend's syntax; return the SQL and used values.

    Only names present in ``params`` are rewritten, and nothing inside string literals,
    quoted identifiers or comments, nor ``::`` casts, is touched. Values are returned for
    the names actually used (DuckDB rejects unused named parameters).
    """
    params = params or {}
    out: list[str] = []
    used: dict[str, Any] = {}
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in ("'", '"'):
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:  # doubled quote escapes itself
                        j += 2
                        continue
                    break
                j += 1
            out.append(sql[i : j + 1])
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            out.append(sql[i:j])
            i = j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(sql[i:j])
            i = j
        elif sql.startswith("::", i):
            out.append("::")
            i += 2
        elif c == ":" and (m := _IDENT.match(sql, i + 1)) and m.group() in params:
            name = m.group()
            used[name] = _bind_value(params[name])
            out.append(placeholder.format(name=name))
            i = m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out), used


def _bind_value(value: Any) -> Any:
    # Aware datetimes would bind as TIMESTAMPTZ and compare through the session time zone.
    if isinstance(value, datetime):
        return to_utc_naive(value)
    if isinstance(value, (tuple, set, frozenset)):
        return [_bind_value(v) for v in value]
    if isinstance(value, list):
        return [_bind_value(v) for v in value]
    return value


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _earliest(batch: pa.Table) -> datetime:
    """The earliest start_time of a batch (UTC-naive, as stored)."""
    value = pc.min(batch.column("start_time")).as_py()
    assert isinstance(value, datetime)
    return value


class DuckDBEventStore(EventStore):
    dialect = Dialect("duckdb")

    def __init__(
        self,
        path: str | Path,
        *,
        memory_limit: str = "400MB",
        threads: int | None = None,
        checkpoint_threshold: str | None = None,
    ) -> None:
        target = str(path)
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "memory_limit": memory_limit,
            # Appends and scans need not keep insertion order; every read that cares sorts.
            "preserve_insertion_order": False,
        }
        if checkpoint_threshold is not None:
            # DuckDB folds the write-ahead log into the file when it passes this size, on
            # the committing (writer) thread; each fold also rewrites the table's last,
            # partly filled row group, so folding rarely costs much less in total
            config["checkpoint_threshold"] = checkpoint_threshold
        if threads is not None:
            config["threads"] = threads
        self.path = target
        try:
            self._conn = duckdb.connect(target, config=config)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise errors.Unavailable(
                    f"the event store {target} is in use by another process (is a tenantscope"
                    " server already running on this data dir?)"
                ) from exc
            raise errors.Unavailable(f"cannot open the event store {target}: {exc}") from exc
        # a bar drawn on the server's terminal during long statements is noise
        self._conn.execute("SET enable_progress_bar = false")
        try:
            # Only affects how exports print zoned times; ICU may be absent (then it is UTC).
            self._conn.execute("SET GLOBAL TimeZone = 'UTC'")
        except duckdb.Error:
            pass
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = False
        self._dirty_records = 0
        self._dirty_since: datetime | None = None
        # the trace look-up's sorted copy (storage/lookup_index.py): the last write batch
        # number, the one the copy covers, its rows and the index rows written since
        self._seq = 0
        self._sorted_upto = -1
        self._sorted_rows = 0
        self._unsorted_rows = 0
        self._init_schema()

    # -- setup -------------------------------------------------------------------------

    def _init_schema(self) -> None:
        conn = self._conn
        conn.execute(_CREATE_RECORDS)
        conn.execute(_CREATE_META)
        found = [
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'records' AND table_schema = current_schema() "
                "ORDER BY ordinal_position"
            ).fetchall()
        ]
        if len(found) < len(RECORD_FIELDS) and tuple(found) == RECORD_FIELDS[: len(found)]:
            # a store made by an earlier version: fields added since sit last in the record
            for name in RECORD_FIELDS[len(found) :]:
                conn.execute(
                    f"ALTER TABLE records ADD COLUMN {name} {_column_type(name)}"
                    f" DEFAULT {_column_default(name)}"
                )
            found = list(RECORD_FIELDS)
        if tuple(found) != RECORD_FIELDS:
            raise errors.ConfigError(
                f"event store {self.path} has a records table with columns {found}; "
                f"this version expects {list(RECORD_FIELDS)}"
            )
        if not conn.execute(
            "SELECT 1 FROM tenantscope_meta WHERE key = 'schema_version'"
        ).fetchall():
            conn.execute(
                "INSERT INTO tenantscope_meta VALUES ('schema_version', $v)", {"v": SCHEMA_VERSION}
            )
        for ddl in rollups.CREATE:
            conn.execute(ddl)
        for index in lookup_index.INDEXES:
            conn.execute(index.create)
        conn.execute(lookup_index.CREATE_SORTED)
        if not conn.execute(
            "SELECT 1 FROM tenantscope_meta WHERE key = 'rollups_version' AND value = $v",
            {"v": ROLLUPS_VERSION},
        ).fetchall():
            self.rebuild_rollups()
        elif not conn.execute(
            "SELECT 1 FROM tenantscope_meta WHERE key = 'lookup_index_version' AND value = $v",
            {"v": lookup_index.VERSION},
        ).fetchall():
            self._rebuild_lookup_indexes()
        self._seq = int(
            conn.execute("SELECT coalesce(max(seq), 0) FROM trace_index").fetchall()[0][0]
        )
        upto = conn.execute(
            "SELECT max(value::BIGINT) FROM tenantscope_meta WHERE key = 'trace_sorted_upto'"
        ).fetchall()[0][0]
        self._sorted_upto = -1 if upto is None else int(upto)
        self._sorted_rows = int(
            conn.execute(f"SELECT count(*) FROM {lookup_index.SORTED}").fetchall()[0][0]
        )
        self._unsorted_rows = int(
            conn.execute(
                "SELECT count(*) FROM trace_index WHERE seq > $upto", {"upto": self._sorted_upto}
            ).fetchall()[0][0]
        )

    def rebuild_rollups(self) -> None:
        """Recompute the rollup tables and the look-up indexes from ``records`` (after a bulk
        load that bypassed ``write``, or when opening a file written before they existed)."""
        self._rebuild_lookup_indexes()
        with self._write_lock:
            _in_transaction(
                self._conn,
                [(f"DELETE FROM {table}", None) for table in rollups.TABLES]
                + [(stmt, None) for stmt in rollups.delta_inserts("records")]
                + [
                    ("DELETE FROM tenantscope_meta WHERE key = 'rollups_version'", None),
                    (
                        "INSERT INTO tenantscope_meta VALUES ('rollups_version', $v)",
                        {"v": ROLLUPS_VERSION},
                    ),
                ],
            )
            self._dirty_records = 0
            self._dirty_since = None

    def _rebuild_lookup_indexes(self) -> None:
        statements: list[tuple[str, dict[str, Any] | None]] = []
        for index in lookup_index.INDEXES:
            statements += [
                (f"DROP TABLE IF EXISTS {index.table}", None),
                (index.create, None),
                # in time order, as writes add them (storage/lookup_index.py)
                (
                    f"INSERT INTO {index.table} SELECT * FROM ({index.rows_of('records')})"
                    " ORDER BY first",
                    {"seq": 0},
                ),
            ]
        statements += [(lookup_index.MAKE_SORTED, {"upto": 0}), *_sorted_upto_rows(0)]
        statements += [
            (
                "DELETE FROM tenantscope_meta"
                " WHERE key IN ('trace_index_version', 'lookup_index_version')",
                None,
            ),
            (
                "INSERT INTO tenantscope_meta VALUES ('lookup_index_version', $v)",
                {"v": lookup_index.VERSION},
            ),
        ]
        with self._write_lock:
            _in_transaction(self._conn, statements)
            self._note_sorted(self._conn, 0)

    def _make_sorted(self, cur: duckdb.DuckDBPyConnection) -> None:
        """Make the trace look-up's sorted copy again (under the write lock)."""
        upto = self._seq
        _in_transaction(cur, [(lookup_index.MAKE_SORTED, {"upto": upto}), *_sorted_upto_rows(upto)])
        self._note_sorted(cur, upto)

    def _note_sorted(self, cur: duckdb.DuckDBPyConnection, upto: int) -> None:
        # set once the copy is committed: a look-up that read the old bound and then sees
        # the new copy reads some rows twice, which the min/max it takes does not mind
        self._sorted_upto = upto
        self._sorted_rows = int(
            cur.execute(f"SELECT count(*) FROM {lookup_index.SORTED}").fetchall()[0][0]
        )
        self._unsorted_rows = 0

    def compact_rollups(self) -> None:
        """Fold the delta rows written since the last compaction."""
        with self._write_lock:
            self._compact_locked(self._cursor())

    def _compact_locked(self, cur: duckdb.DuckDBPyConnection) -> None:
        if self._dirty_since is None:
            return
        since = self._dirty_since.replace(minute=0, second=0, microsecond=0)
        _in_transaction(
            cur,
            [(stmt, {"since": since} if "$since" in stmt else None) for stmt in rollups.compact()],
        )
        self._dirty_records = 0
        self._dirty_since = None

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        if self._closed:
            raise errors.Unavailable("the event store is closed")
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._new_cursor()
            self._local.cursor = cur
        return cur

    def _new_cursor(self) -> duckdb.DuckDBPyConnection:
        with self._cursors_lock:
            if self._closed:
                raise errors.Unavailable("the event store is closed")
            cur = self._conn.cursor()
            self._cursors.append(cur)
            return cur

    def _drop_cursor(self, cur: duckdb.DuckDBPyConnection) -> None:
        with self._cursors_lock:
            if cur in self._cursors:
                self._cursors.remove(cur)
        cur.close()

    # -- writes ------------------------------------------------------------------------

    def write(
        self,
        inserts: Sequence[UsageRecord],
        updates: Sequence[UsageRecord] = (),
        *,
        tables: Sequence[pa.Table] = (),
        replaced: Sequence[UsageRecord] = (),
    ) -> None:
        tables = [t for t in tables if t.num_rows]
        old = (
            records_to_arrow(replaced)
            if replaced and {_identity(r) for r in replaced} == {_identity(u) for u in updates}
            else None
        )
        if not inserts and not updates and not tables:
            return
        parts = [records_to_arrow([*updates, *inserts])] if inserts or updates else []
        parts += tables
        batch = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        keys: pa.Table | None = None
        if updates:
            keys = pa.table(
                {
                    "event_id": pa.array([u.event_id for u in updates], pa.string()),
                    "trace_id": pa.array([u.trace_id for u in updates], pa.string()),
                    "start_time": pa.array(
                        [to_utc_naive(u.start_time) for u in updates], pa.timestamp("us")
                    ),
                }
            )
        cur = self._cursor()
        with self._write_lock:
            cur.register("_ts_batch", batch)
            if keys is not None:
                cur.register("_ts_keys", keys)
            if old is not None:
                cur.register("_ts_old", old)
            try:
                cur.begin()
                try:
                    if keys is not None:
                        lo, hi = _bounds(keys.column("start_time"))
                        # the replaced versions leave the rollups before they leave records
                        # (when the caller gave them, below, with the new rows' deltas)
                        if old is None:
                            for stmt in rollups.delta_inserts(_REPLACED, sign=-1):
                                cur.execute(stmt, {"lo": lo, "hi": hi})
                        # start_time first: the range lets zone maps skip other row groups.
                        cur.execute(
                            "DELETE FROM records USING _ts_keys k "
                            "WHERE records.start_time BETWEEN $lo AND $hi "
                            "AND records.start_time = k.start_time "
                            "AND records.event_id = k.event_id AND records.trace_id = k.trace_id",
                            {"lo": lo, "hi": hi},
                        )
                    cur.execute(
                        f"INSERT INTO records ({_COLUMNS}) SELECT {_COLUMNS} FROM _ts_batch"
                    )
                    self._seq += 1
                    added = {
                        index: cur.execute(
                            f"INSERT INTO {index.table} {index.rows_of('_ts_batch')}",
                            {"seq": self._seq},
                        ).fetchall()[0][0]
                        for index in lookup_index.INDEXES
                    }
                    if old is not None:  # the stored versions go out as the new ones come in
                        deltas = rollups.delta_inserts_replacing("_ts_batch", "_ts_old")
                    else:
                        deltas = rollups.delta_inserts("_ts_batch")
                    for stmt in deltas:
                        cur.execute(stmt)
                    cur.commit()
                except BaseException:
                    cur.rollback()
                    raise
            finally:
                cur.unregister("_ts_batch")
                if keys is not None:
                    cur.unregister("_ts_keys")
                if old is not None:
                    cur.unregister("_ts_old")
            first = _earliest(batch)
            if self._dirty_since is None or first < self._dirty_since:
                self._dirty_since = first
            self._dirty_records += len(batch)
            if self._dirty_records >= COMPACT_EVERY_RECORDS:
                self._compact_locked(cur)
            self._unsorted_rows += int(added[lookup_index.TRACES])
            if self._unsorted_rows >= max(lookup_index.SORT_EVERY, self._sorted_rows):
                self._make_sorted(cur)

    # -- look-ups ----------------------------------------------------------------------

    def existing_event_keys(
        self, event_ids: Sequence[str], start_min: datetime, start_max: datetime
    ) -> set[tuple[str, str]]:
        if not event_ids:
            return set()
        rows = self._cursor().execute(
            "SELECT DISTINCT tenant_id, event_id FROM records "
            "WHERE start_time BETWEEN $lo AND $hi "
            "AND event_id IN (SELECT unnest($ids))",
            {"lo": to_utc_naive(start_min), "hi": to_utc_naive(start_max), "ids": list(event_ids)},
        )
        return {(row[0], row[1]) for row in rows.fetchall()}

    def trace_records(
        self, trace_ids: Sequence[str], start_min: datetime, start_max: datetime
    ) -> list[UsageRecord]:
        return self._indexed_records(lookup_index.TRACES, trace_ids, start_min, start_max)

    def trace_bounds(self, trace_id: str) -> tuple[datetime, datetime] | None:
        rows = (
            self._cursor()
            .execute(lookup_index.TRACE_BOUNDS, {"id": trace_id, "upto": self._sorted_upto})
            .fetchall()
        )
        if not rows or rows[0][0] is None:
            return None
        return rows[0][0], rows[0][1]

    def response_records(
        self, response_ids: Sequence[str], start_min: datetime, start_max: datetime
    ) -> list[UsageRecord]:
        return self._indexed_records(
            lookup_index.RESPONSES, response_ids, start_min, start_max, "kind = 'llm' AND "
        )

    def _indexed_records(
        self,
        index: lookup_index.LookupIndex,
        ids: Sequence[str],
        start_min: datetime,
        start_max: datetime,
        where: str = "",
    ) -> list[UsageRecord]:
        """The records whose ``index.column`` is one of ``ids`` that started inside the
        range: the index says which ids have records there, and when (two small reads
        instead of reading the id column of every record in the range)."""
        lo, hi = to_utc_naive(start_min), to_utc_naive(start_max)
        hits = (
            self._cursor()
            .execute(index.hits, {"ids": sorted(set(ids)), "lo": lo, "hi": hi})
            .fetchall()
            if ids
            else []
        )
        if not hits:
            return []
        table = self.fetch_arrow(
            f"SELECT {_COLUMNS} FROM records "
            f"WHERE start_time BETWEEN :lo AND :hi AND {where}{index.column} IN "
            "(SELECT unnest(:ids)) ORDER BY start_time, event_id",
            {
                "lo": max(lo, min(h[1] for h in hits)),
                "hi": min(hi, max(h[2] for h in hits)),
                "ids": [h[0] for h in hits],
            },
        )
        return arrow_to_records(table)

    # -- reads -------------------------------------------------------------------------

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        # a read-only transaction on this thread's cursor: DuckDB's MVCC keeps what it
        # sees fixed while the writer commits; nothing to commit, so it ends in rollback
        depth = getattr(self._local, "snapshots", 0)
        cur = self._cursor()
        if depth == 0:
            cur.begin()
        self._local.snapshots = depth + 1
        try:
            yield
        finally:
            self._local.snapshots = depth
            if depth == 0:
                cur.rollback()

    def fetch(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        text, values = render_params(sql, params)
        cur = self._cursor().execute(text, values)
        names = [d[0] for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def fetch_arrow(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        text, values = render_params(sql, params)
        table = self._cursor().sql(text, params=values).to_arrow_table()
        assert isinstance(table, pa.Table)
        return table

    def iter_records(
        self, start: datetime, end: datetime, batch_size: int = 10_000
    ) -> Iterator[list[UsageRecord]]:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        # A cursor of its own: the caller may write (e.g. reprice) between batches, which
        # would otherwise reset this thread's cursor mid-stream.
        cur = self._new_cursor()
        try:
            reader = cur.sql(
                f"SELECT {_COLUMNS} FROM records "
                "WHERE start_time >= $start AND start_time < $end "
                "ORDER BY start_time, event_id",
                params={"start": to_utc_naive(start), "end": to_utc_naive(end)},
            ).to_arrow_reader(batch_size)
            pending: list[UsageRecord] = []
            for chunk in reader:
                pending.extend(arrow_to_records(chunk))
                while len(pending) >= batch_size:
                    yield pending[:batch_size]
                    pending = pending[batch_size:]
            if pending:
                yield pending
        finally:
            self._drop_cursor(cur)

    def count(self, start: datetime | None = None, end: datetime | None = None) -> int:
        where, values = _range_clause(start, end)
        rows = self._cursor().execute(f"SELECT count(*) FROM records{where}", values).fetchall()
        return int(rows[0][0])

    def export(
        self,
        path: str,
        fmt: str,
        start: datetime,
        end: datetime,
        progress: Callable[[datetime], None] | None = None,
    ) -> int:
        if fmt not in EXPORT_FORMATS:
            raise errors.BadRequest(f"export format must be one of {', '.join(EXPORT_FORMATS)}")
        # Streamed an hour at a time, each hour sorted, through Arrow batches into one
        # writer: memory stays at DuckDB's own limit plus a batch whatever the range holds
        # (one COPY ... ORDER BY over a busy day ran out of memory).
        cur = self._new_cursor()
        rows = 0
        writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
        try:
            t = to_utc_naive(start)
            stop = to_utc_naive(end)
            while t < stop:
                upto = min(t + EXPORT_WINDOW, stop)
                reader = cur.sql(
                    f"SELECT {_EXPORT_SELECT[fmt]} FROM records "
                    "WHERE start_time >= $start AND start_time < $end "
                    "ORDER BY start_time, event_id",
                    params={"start": t, "end": upto},
                ).to_arrow_reader(EXPORT_BATCH_ROWS)
                if writer is None:
                    writer = _export_writer(path, fmt, reader.schema)
                for batch in reader:
                    writer.write_batch(batch)
                    rows += batch.num_rows
                if progress is not None:
                    progress(upto)
                t = upto
            if writer is None:  # an empty range: a file with the columns, no rows
                empty = cur.sql(f"SELECT {_EXPORT_SELECT[fmt]} FROM records LIMIT 0")
                writer = _export_writer(path, fmt, empty.to_arrow_reader(1).schema)
        finally:
            if writer is not None:
                writer.close()
            self._drop_cursor(cur)
        return rows

    # -- lifecycle ---------------------------------------------------------------------

    def ping(self) -> None:
        try:
            self._cursor().execute("SELECT 1").fetchall()
        except errors.Unavailable:
            raise
        except duckdb.Error as exc:
            raise errors.Unavailable(f"event store unavailable: {exc}") from exc

    def close(self) -> None:
        with self._cursors_lock:
            if self._closed:
                return
            self._closed = True
            cursors, self._cursors = self._cursors, []
        with self._write_lock:
            for cur in cursors:
                cur.close()
            if self.path != ":memory:":
                # Fold the WAL into the file so the next open need not replay it.
                self._conn.execute("CHECKPOINT")
            self._conn.close()


def _identity(record: UsageRecord) -> tuple[str, str]:
    """What a rewrite matches a stored record by (with its start time): an event id alone
    may stand in several tenants' traces."""
    return record.trace_id, record.event_id


def _sorted_upto_rows(upto: int) -> list[tuple[str, dict[str, Any] | None]]:
    return [
        ("DELETE FROM tenantscope_meta WHERE key = 'trace_sorted_upto'", None),
        ("INSERT INTO tenantscope_meta VALUES ('trace_sorted_upto', $v)", {"v": str(upto)}),
    ]


def _in_transaction(
    cur: duckdb.DuckDBPyConnection, statements: list[tuple[str, dict[str, Any] | None]]
) -> None:
    """Run the statements as one transaction: all take effect or none."""
    cur.begin()
    try:
        for sql, params in statements:
            cur.execute(sql, params)
        cur.commit()
    except BaseException:
        cur.rollback()
        raise


def _bounds(column: pa.ChunkedArray) -> tuple[datetime, datetime]:
    values = column.to_pylist()
    return min(values), max(values)


def _range_clause(start: datetime | None, end: datetime | None) -> tuple[str, dict[str, Any]]:
    parts: list[str] = []
    values: dict[str, Any] = {}
    if start is not None:
        parts.append("start_time >= $start")
        values["start"] = to_utc_naive(start)
    if end is not None:
        parts.append("start_time < $end")
        values["end"] = to_utc_naive(end)
    return (" WHERE " + " AND ".join(parts) if parts else ""), values
