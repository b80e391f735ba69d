"""The ingest write-ahead log: decoded OTLP spans on disk before they are in the store.

An OTLP request is answered once its records are here and fsynced (one fsync for all the
requests that arrived meanwhile: group commit). The writer then moves them into the event
store in batches as large as it likes, independent of how many senders wait: a DuckDB
statement costs about a millisecond however few rows it carries, so store batches of
thousands of rows are what makes ingest fast. A crash loses nothing acknowledged: the next
open applies what is left here, and since the writer drops ids it has already stored,
applying a record twice stores it once.

Layout: ``<dir>/<number>.arrows``, each an Arrow IPC stream of ``ARROW_SCHEMA`` record
batches, one batch per request. A segment is deleted when it is closed (the log moved on
to the next one) and every batch in it has been applied. A batch cut short by a crash was
never acknowledged; reading stops there.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from tenantscope.storage.serialize import ARROW_SCHEMA

log = logging.getLogger("tenantscope.ingest")

SUFFIX = ".arrows"
# A segment is closed after this many bytes, so applied data leaves the disk in pieces.
SEGMENT_BYTES = 64 * 1024 * 1024


class WriteAheadLog:
    """Appends (from one thread) and marks applied (from another); thread-safe."""

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self._segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # segments found at open: the caller applies them (``pending``) before appending
        self._found = sorted(
            (p for p in directory.glob(f"*{SUFFIX}") if p.stem.isdigit()),
            key=lambda p: int(p.stem),
        )
        self._number = int(self._found[-1].stem) + 1 if self._found else 1
        self._file: BinaryIO | None = None
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._size = 0
        # segment number -> batches appended and not yet applied
        self._unapplied: dict[int, int] = {}

    # -- on open ---------------------------------------------------------------------------
    def pending(self) -> Iterator[pa.Table]:
        """The batches left by an earlier run, oldest first, one table per request."""
        for path in self._found:
            yield from _read_segment(path)

    def forget_pending(self) -> None:
        """Delete the segments ``pending`` read: their records are in the store now."""
        for path in self._found:
            path.unlink(missing_ok=True)
        self._found = []

    # -- appending -------------------------------------------------------------------------
    def append(self, tables: list[pa.Table]) -> int:
        """Write the tables (one batch each) and fsync; return the segment they are in."""
        with self._lock:
            if self._writer is None:
                self._open_segment()
            assert self._writer is not None and self._file is not None
            number = self._number
            for table in tables:
                # one batch per request: a cut write loses at most the last request
                self._writer.write_table(table.combine_chunks())
            self._file.flush()
            os.fsync(self._file.fileno())
            self._size = self._file.tell()
            self._unapplied[number] = self._unapplied.get(number, 0) + len(tables)
            if self._size >= self._segment_bytes:
                self._close_segment()
            return number

    def applied(self, segment: int, count: int) -> None:
        """``count`` tables appended to ``segment`` are in the store now."""
        with self._lock:
            left = self._unapplied.get(segment, 0) - count
            if left > 0:
                self._unapplied[segment] = left
                return
            self._unapplied.pop(segment, None)
            if segment != self._number or self._writer is None:
                self._path(segment).unlink(missing_ok=True)  # closed and applied

    def close(self) -> None:
        with self._lock:
            self._close_segment()

    # -- segments --------------------------------------------------------------------------
    def _path(self, number: int) -> Path:
        return self.directory / f"{number:012d}{SUFFIX}"

    def _open_segment(self) -> None:
        self._file = open(self._path(self._number), "wb")  # kept open: appended to
        self._writer = pa.ipc.new_stream(self._file, ARROW_SCHEMA)
        self._size = 0

    def _close_segment(self) -> None:
        if self._writer is None or self._file is None:
            return
        self._writer.close()
        self._file.close()
        self._writer = self._file = None
        done = self._number not in self._unapplied
        if done:
            self._path(self._number).unlink(missing_ok=True)
        self._number += 1


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
