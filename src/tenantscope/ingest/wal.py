"""The ingest write-ahead log: decoded OTLP spans on disk before they are in the store.

An OTLP request is answered once its records are here and fsynced. The writer then moves
them into the event store in batches as large as it likes, independent of how many senders
wait: a DuckDB statement costs about a millisecond however few rows it carries, so store
batches of thousands of rows are what makes ingest fast. A crash loses nothing
acknowledged: the next open applies what is left here, and since the writer drops ids it
has already stored, applying a record twice stores it once.

Who writes: each decode worker process appends its own requests to its own segments
(``SegmentAppender``) and hands the server only where the batch is, so a request's spans
cross from worker to server through the page cache, not a pipe; the server process logs
what it decoded itself (``WriteAheadLog.append``, one fsync for all requests waiting).

Layout: ``<dir>/<owner>-<number>.arrows``, each an Arrow IPC stream of ``ARROW_SCHEMA``
record batches, one batch per request. A segment is deleted when it is closed (its writer
moved on to another, or stopped) and every batch in it has been applied. A batch cut short
by a crash was never acknowledged; reading stops there.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

import pyarrow as pa

from tenantscope.storage.serialize import ARROW_SCHEMA

log = logging.getLogger("tenantscope.ingest")

SUFFIX = ".arrows"
# A segment is closed after this many bytes, so applied data leaves the disk in pieces.
SEGMENT_BYTES = 64 * 1024 * 1024


class Logged(NamedTuple):
    """Where one request's batch is: what a decode worker hands the server."""

    segment: str  # path of the segment file
    offset: int  # where the batch's messages start
    rows: int
    # segments the worker closed meanwhile, with how many batches each holds
    closed: tuple[tuple[str, int], ...]


class SegmentAppender:
    """One writer's segments: appends a table as one batch, fsyncs, says where it is.
    Not thread-safe (one thread, or one process, per appender)."""

    def __init__(self, directory: Path, owner: str, segment_bytes: int = SEGMENT_BYTES) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        # a random part: a leftover segment of an earlier process with the same pid
        self._prefix = f"{owner}-{secrets.token_hex(4)}"
        self._segment_bytes = segment_bytes
        self._number = 0
        self._path = ""
        self._file: BinaryIO | None = None
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._batches = 0
        self._closed: list[tuple[str, int]] = []

    def append(self, table: pa.Table) -> tuple[str, int]:
        """Write ``table`` and fsync: (segment, offset). A crash mid-write loses it whole."""
        self.write(table)
        self.sync()
        return self._path, self._last_offset

    def write(self, table: pa.Table) -> str:
        """Write without syncing (``sync`` makes everything written durable)."""
        if self._writer is None:
            self._open()
        assert self._writer is not None and self._file is not None
        self._last_offset = self._file.tell()
        self._writer.write_table(table.combine_chunks())  # one batch: one request
        self._batches += 1
        return self._path

    def sync(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        if self._file.tell() >= self._segment_bytes:
            self.close()

    def take_closed(self) -> tuple[tuple[str, int], ...]:
        """Segments closed since the last call, with their batch counts."""
        closed, self._closed = tuple(self._closed), []
        return closed

    def close(self) -> None:
        if self._writer is None or self._file is None:
            return
        self._writer.close()
        self._file.close()
        self._writer = self._file = None
        self._closed.append((self._path, self._batches))

    def _open(self) -> None:
        self._number += 1
        self._path = str(self.directory / f"{self._prefix}-{self._number:08d}{SUFFIX}")
        self._file = open(self._path, "wb")  # kept open: appended to
        self._writer = pa.ipc.new_stream(self._file, ARROW_SCHEMA)
        self._last_offset = 0
        self._batches = 0


class WriteAheadLog:
    """The server's view of the log: its own appends, the segments workers wrote, which
    of them are applied. Thread-safe."""

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # segments found at open: the caller applies them (``pending``) before appending
        self._found = sorted(directory.glob(f"*{SUFFIX}"))
        self._own = SegmentAppender(directory, "server", segment_bytes)
        # per segment: batches logged (answered), batches applied, and once the segment
        # is closed the batches it holds (a worker may have logged a batch whose request
        # then failed: such a batch is never applied, the segment goes at close)
        self._logged: dict[str, int] = {}
        self._applied: dict[str, int] = {}
        self._total: dict[str, int] = {}

    # -- on open ---------------------------------------------------------------------------
    def pending(self) -> Iterator[pa.Table]:
        """The batches left by an earlier run, one table per request."""
        for path in self._found:
            yield from _read_segment(path)

    def forget_pending(self) -> None:
        """Delete the segments ``pending`` read: their records are in the store now."""
        for path in self._found:
            path.unlink(missing_ok=True)
        self._found = []

    # -- appending -------------------------------------------------------------------------
    def append(self, tables: list[pa.Table]) -> str:
        """Write the tables (one batch each), fsync once; return the segment they are in."""
        with self._lock:
            segment = ""
            for table in tables:
                segment = self._own.write(table)
            self._own.sync()
            self._logged[segment] = self._logged.get(segment, 0) + len(tables)
            self._closed(self._own.take_closed())
            return segment

    def adopt(self, logged: Logged) -> pa.Table:
        """A batch a worker logged: count it as not applied, and read it (zero-copy)."""
        source = pa.memory_map(logged.segment)
        source.seek(logged.offset)
        message = pa.ipc.read_message(source)
        if message.type == "schema":  # the segment's first batch follows its schema
            message = pa.ipc.read_message(source)
        table = pa.Table.from_batches([pa.ipc.read_record_batch(message, ARROW_SCHEMA)])
        with self._lock:
            self._logged[logged.segment] = self._logged.get(logged.segment, 0) + 1
            self._closed(logged.closed)
        return table

    def applied(self, segment: str, count: int) -> None:
        """``count`` tables logged in ``segment`` are in the store now."""
        with self._lock:
            self._applied[segment] = self._applied.get(segment, 0) + count
            self._drop_if_done(segment)

    def close(self) -> None:
        """Stop: no one writes any more (the workers are gone), so every segment with no
        answered batch still to apply goes; the others stay for the next start."""
        with self._lock:
            self._own.close()
            self._own.take_closed()
            for path in self.directory.glob(f"*{SUFFIX}"):
                key = str(path)
                if self._logged.get(key, 0) <= self._applied.get(key, 0):
                    path.unlink(missing_ok=True)
            self._logged.clear()
            self._applied.clear()
            self._total.clear()

    def _closed(self, closed: Iterable[tuple[str, int]]) -> None:
        for path, batches in closed:
            self._total[path] = batches
            self._drop_if_done(path)

    def _drop_if_done(self, segment: str) -> None:
        total = self._total.get(segment)
        if total is not None and self._applied.get(segment, 0) >= total:
            Path(segment).unlink(missing_ok=True)
            for counts in (self._logged, self._applied, self._total):
                counts.pop(segment, None)


def _read_segment(path: Path) -> Iterator[pa.Table]:
    try:
        reader = pa.ipc.open_stream(pa.memory_map(str(path)))
    except (pa.ArrowInvalid, OSError) as exc:
        # cut short before its first batch was written: nothing in it was acknowledged
        log.warning("write-ahead log segment %s holds no batch (%s); skipped", path.name, exc)
        return
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError):
            log.warning("write-ahead log segment %s ends in a cut batch; it was not acknowledged",
                        path.name)  # fmt: skip
            return
        table = pa.Table.from_batches([batch])
        if table.schema != ARROW_SCHEMA:
            table = table.select(ARROW_SCHEMA.names).cast(ARROW_SCHEMA)
        yield table
