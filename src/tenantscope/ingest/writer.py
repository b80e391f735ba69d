"""Group commit: one thread writes everything queued since its last write as one batch.

A request hands its records to ``submit`` and is answered only when the batch holding them
is durable. Per batch the writer drops records already stored (idempotency by event_id),
resolves attribution over each touched trace (``attribution.resolve_trace``) together with
that trace's stored records, prices the new records, and writes inserts and rewrites in one
store transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa

from tenantscope.errors import Unavailable
from tenantscope.ingest.attribution import attribution_key, resolve_trace
from tenantscope.records import UsageRecord
from tenantscope.storage.base import EventStore
from tenantscope.storage.serialize import arrow_to_records, to_utc_naive

log = logging.getLogger("tenantscope.ingest")

# Spans of one trace are looked for this far around a batch's own time range. Traces longer
# than this still store every span; only inheritance/shadowing across the gap is missed.
DEFAULT_TRACE_WINDOW = timedelta(hours=6)
# A re-sent span or event carries the start time of its first copy (exporters resend the
# same bytes); an event without a timestamp gets the time it was received, so a retry of it
# differs by the retry delay: such ids are looked for this far around their arrival.
DEFAULT_DEDUPE_WINDOW = timedelta(hours=24)
# A client that re-computes an event's timestamp when it retries shifts it by about the
# retry delay; ids with explicit times are also looked for this far around the batch.
RETRY_SKEW = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class WriteResult:
    accepted: int
    duplicates: int


@dataclass(slots=True)
class _Job:
    records: list[UsageRecord]
    future: Future[WriteResult]
    # attribution already resolved among this job's own records (see ingest/pool.py)
    resolved: bool = False
    # or: the records as a priced Arrow table (``records`` empty), made by a decode worker
    # process; rows are turned into records only when their trace must be re-resolved
    table: pa.Table | None = None

    @property
    def size(self) -> int:
        return self.table.num_rows if self.table is not None else len(self.records)


_STOP = object()


def synthetic_ids(event_id: str) -> tuple[str, str]:
    """A trace and span id for a native event that came without them, stable per event."""
    digest = hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:32], digest[32:48]


class _Rows:
    """The ids, traces and start times of a batch's jobs, records and table rows alike,
    read once; which job first sent each id (later copies in the batch are dropped)."""

    def __init__(self) -> None:
        # first copies: id, trace, start, stamped
        self.ids: list[tuple[str, str, datetime, bool]] = []
        self.per_job: list[list[str]] = []  # ids each job sent first
        self.traces: list[list[tuple[str, str, datetime]]] = []  # first copies per job
        self.all_traces: list[list[tuple[str, str, datetime]]] = []
        self._first_job: dict[str, int] = {}
        self._priced: set[str] = set()

    @classmethod
    def of(cls, jobs: list[_Job]) -> _Rows:
        rows = cls()
        for j, job in enumerate(jobs):
            if job.table is not None:
                ids = job.table.column("event_id").to_pylist()
                traces = job.table.column("trace_id").to_pylist()
                starts = job.table.column("start_time").to_pylist()
                stamped = [False] * len(ids)  # spans carry their own start times
            else:
                ids = [r.event_id for r in job.records]
                traces = [r.trace_id for r in job.records]
                starts = [to_utc_naive(r.start_time) for r in job.records]
                stamped = [r.start_time == r.received_at for r in job.records]
            mine: list[str] = []
            mine_traces: list[tuple[str, str, datetime]] = []
            for i, t, s, st in zip(ids, traces, starts, stamped, strict=True):
                if i in rows._first_job:
                    continue
                rows._first_job[i] = j
                rows.ids.append((i, t, s, st))
                mine.append(i)
                mine_traces.append((i, t, s))
                if job.table is not None:
                    rows._priced.add(i)
            rows.per_job.append(mine)
            rows.traces.append(mine_traces)
            rows.all_traces.append(
                list(zip(ids, traces, starts, strict=True)) if job.table is not None else []
            )
        return rows

    def first_id(self, event_id: str, job: int) -> bool:
        """Whether ``job`` is the one that sent this id first in the batch."""
        return self._first_job.get(event_id) == job

    def unpriced(self, event_id: str) -> bool:
        return event_id not in self._priced


class BatchWriter:
    def __init__(
        self,
        store: EventStore,
        price: Callable[[UsageRecord], None],
        *,
        max_batch: int = 50_000,
        trace_window: timedelta = DEFAULT_TRACE_WINDOW,
        dedupe_window: timedelta = DEFAULT_DEDUPE_WINDOW,
    ) -> None:
        self._store = store
        self._price = price
        self._max_batch = max_batch
        self._window = trace_window
        self._dedupe_window = dedupe_window
        self._queue: queue.Queue[_Job | object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.records_written = 0
        self.duplicates = 0
        self.failures = 0

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tenantscope-writer", daemon=True
                )
                self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- submitting --------------------------------------------------------------------
    def submit(
        self, records: Sequence[UsageRecord], *, resolved: bool = False
    ) -> Future[WriteResult]:
        """Queue records; the future completes when they are durable. ``resolved`` says
        attribution was already resolved among these records (they are not re-resolved
        unless their traces have spans stored or in other requests of the batch)."""
        fut: Future[WriteResult] = Future()
        if not records:
            fut.set_result(WriteResult(0, 0))
            return fut
        if not self.running:
            fut.set_exception(Unavailable("the ingest writer is not running"))
            return fut
        self._queue.put(_Job(list(records), fut, resolved))
        return fut

    async def write(self, records: Sequence[UsageRecord], *, resolved: bool = False) -> WriteResult:
        return await asyncio.wrap_future(self.submit(records, resolved=resolved))

    async def write_table(self, table: pa.Table) -> WriteResult:
        """Like ``write`` for records already priced, resolved among themselves and
        converted with ``records_to_arrow`` (what the decode workers hand back)."""
        fut: Future[WriteResult] = Future()
        if table.num_rows == 0:
            return WriteResult(0, 0)
        if not self.running:
            raise Unavailable("the ingest writer is not running")
        self._queue.put(_Job([], fut, True, table))
        return await asyncio.wrap_future(fut)

    def write_sync(self, records: Sequence[UsageRecord], timeout: float = 60.0) -> WriteResult:
        return self.submit(records).result(timeout)

    # -- the writer thread -------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            assert isinstance(first, _Job)
            jobs = [first]
            size = first.size
            stop_after = False
            while size < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop_after = True
                    break
                assert isinstance(nxt, _Job)
                jobs.append(nxt)
                size += nxt.size
            try:
                results = self._write_batch(jobs)
            except Exception as exc:  # a failed batch fails its requests, not the server
                self.failures += 1
                log.exception("writing a batch of %d records failed", size)
                err = Unavailable(f"storing the records failed: {exc}")
                for job in jobs:
                    job.future.set_exception(err)
            else:
                for job, res in zip(jobs, results, strict=True):
                    job.future.set_result(res)
            if stop_after:
                return

    def _write_batch(self, jobs: list[_Job]) -> list[WriteResult]:
        rows = _Rows.of(jobs)
        stored_by_trace = self._stored_traces(rows)
        stored_ids = self._stored_ids(rows, stored_by_trace)
        inserts, updates, tables, replaced = self._resolve(jobs, rows, stored_ids, stored_by_trace)
        for r in inserts:
            if rows.unpriced(r.event_id):
                self._price(r)
        self._store.write(inserts, updates, tables=tables, replaced=replaced)
        self.batches += 1
        self.records_written += len(inserts) + sum(t.num_rows for t in tables)
        results: list[WriteResult] = []
        for job, ids in zip(jobs, rows.per_job, strict=True):
            # an id repeated inside the batch is accepted for the job that sent it first
            accepted = sum(1 for i in ids if i not in stored_ids)
            results.append(WriteResult(accepted, job.size - accepted))
        self.duplicates += sum(r.duplicates for r in results)
        return results

    def _stored_traces(self, rows: _Rows) -> dict[str, list[UsageRecord]]:
        """The stored records of the batch's traces, within the trace window around it."""
        traces = {t for j in rows.traces for _, t, _ in j if t}
        if not traces:
            return {}
        starts = [s for _, _, s, _ in rows.ids]
        out: dict[str, list[UsageRecord]] = {}
        for s in self._store.trace_records(
            sorted(traces), min(starts) - self._window, max(starts) + self._window
        ):
            out.setdefault(s.trace_id, []).append(s)
        return out

    def _stored_ids(self, rows: _Rows, stored_by_trace: dict[str, list[UsageRecord]]) -> set[str]:
        """Which of the batch's new ids are stored already.

        A re-sent span or event carries its original's start time, so the look-up is
        bounded by the batch's own time range (plus ``RETRY_SKEW``) and the store skips all
        older data. Only records stamped with their arrival time (events sent without a
        timestamp) are looked for within the wider dedupe window, since a retry of them
        arrives later. A span whose id is the default ``trace_id:span_id`` can only be
        stored in its own trace, whose stored records were just read over a wider range:
        those need no look-up of their own."""
        known = {s.event_id for records in stored_by_trace.values() for s in records}
        by_trace_read = self._window >= RETRY_SKEW
        found: set[str] = set()
        ask: list[tuple[str, datetime, bool]] = []
        for i, t, start, stamped in rows.ids:
            if by_trace_read and not stamped and t and i.startswith(t + ":"):
                if i in known:
                    found.add(i)
            else:
                ask.append((i, start, stamped))
        for stamped, margin in ((False, RETRY_SKEW), (True, self._dedupe_window)):
            group = [(i, t) for i, t, s in ask if s is stamped]
            if group:
                found |= self._store.existing_event_ids(
                    [i for i, _ in group],
                    min(t for _, t in group) - margin,
                    max(t for _, t in group) + margin,
                )
        return found

    def _resolve(
        self,
        jobs: list[_Job],
        rows: _Rows,
        stored_ids: set[str],
        stored: dict[str, list[UsageRecord]],
    ) -> tuple[list[UsageRecord], list[UsageRecord], list[pa.Table], list[UsageRecord]]:
        """(records to insert, stored records to rewrite, table rows to insert as they
        are, the stored versions of the records to rewrite). Traces are re-resolved when
        they have spans stored or spans in several requests (or in a request that was not
        resolved); the rows of tables in such traces become records for it, the others
        stay Arrow."""
        new_ids = {i for i, _, _, _ in rows.ids if i not in stored_ids}
        by_trace: dict[str, set[int]] = {}  # trace -> jobs with new rows in it
        count: dict[str, int] = {}
        for j, job in enumerate(jobs):
            for event_id, trace_id, _ in rows.traces[j]:
                if event_id in new_ids and trace_id:
                    by_trace.setdefault(trace_id, set()).add(j if job.resolved else -1)
                    count[trace_id] = count.get(trace_id, 0) + 1
        stored_by_trace = stored
        redo = {
            t
            for t, js in by_trace.items()
            if t in stored_by_trace or (count[t] > 1 and (len(js) > 1 or -1 in js))
        }
        inserts: list[UsageRecord] = []
        tables: list[pa.Table] = []
        for j, job in enumerate(jobs):
            if job.table is None:
                seen_here: set[str] = set()
                for r in job.records:
                    if (
                        r.event_id in new_ids
                        and rows.first_id(r.event_id, j)
                        and r.event_id not in seen_here
                    ):
                        inserts.append(r)
                    seen_here.add(r.event_id)
                continue
            keep: list[bool] = []
            taken: list[bool] = []
            here: set[str] = set()
            for i, t, _ in rows.all_traces[j]:
                # the batch's first copy of an id, and not already stored
                is_new = rows.first_id(i, j) and i not in here and i in new_ids
                here.add(i)
                keep.append(is_new and t not in redo)
                taken.append(is_new and t in redo)
            if all(keep):
                tables.append(job.table)
            elif any(keep):
                tables.append(job.table.filter(pa.array(keep)))
            if any(taken):
                inserts += arrow_to_records(job.table.filter(pa.array(taken)))
        updates: list[UsageRecord] = []
        fresh_ids = {r.event_id for r in inserts}
        new_by_trace: dict[str, list[UsageRecord]] = {}
        for r in inserts:
            if r.trace_id in redo:
                new_by_trace.setdefault(r.trace_id, []).append(r)
        replaced: list[UsageRecord] = []
        for trace_id, new in new_by_trace.items():
            old = stored_by_trace.get(trace_id, [])
            # the stored versions, as they are until this batch commits: the store takes
            # their rollup figures back out without looking them up again
            before = {s.event_id: (attribution_key(s), s.replace()) for s in old}
            for r in resolve_trace([*old, *new]):  # resolves in place
                if r.event_id not in fresh_ids and attribution_key(r) != before[r.event_id][0]:
                    updates.append(r)
                    replaced.append(before[r.event_id][1])
        return inserts, updates, tables, replaced
