"""Group commit: one thread writes everything queued since its last write as one batch.

Per batch the writer drops records already stored (idempotency by ``idempotency_key``: an
event id an app chose is unique within its tenant), resolves
attribution over each touched trace (``attribution.resolve_trace``) together with that
trace's stored records, prices the new records, and writes inserts and rewrites in one
store transaction.

Two ways in. ``write`` (native events, and spans of tenant-bound keys): the request is
answered when the batch holding its records is committed to the store. ``write_table``
(OTLP spans, decoded and priced by a worker) with a write-ahead log: the request is
answered when its records are in the log and fsynced (``ingest/wal.py``); a second thread
does that, for all requests waiting, with one fsync. The store batches then wait up to
``linger`` seconds to grow, since a store batch costs about the same for 500 rows as for
5,000. Reads see their own writes: ``wait_applied`` returns once the records answered
to the reading key are in the store, and those answered to anyone more than a set lag
ago (or, with no lag, every answered record); the API and pages call it first.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from tenantscope.errors import Unavailable
from tenantscope.ingest.attribution import attribution_key, resolve_trace
from tenantscope.ingest.duplicates import DUPLICATE, Key, is_candidate, key_of, resolve_duplicates
from tenantscope.ingest.wal import Logged, WriteAheadLog
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
# Copies of one provider response (ingest/duplicates.py) are looked for among the stored
# records that started this far around a batch: two reports of one call start together, but
# a library's retry or a second exporter can send its copy hours later.
DEFAULT_RESPONSE_WINDOW = timedelta(hours=24)
# A client that re-computes an event's timestamp when it retries shifts it by about the
# retry delay; ids with explicit times are also looked for this far around the batch.
RETRY_SKEW = timedelta(minutes=10)
# Logged records wait this long for more before going to the store (see the module doc).
DEFAULT_LINGER_S = 0.5
# Logged but not yet stored rows at most; beyond, requests wait (then get a 503) rather
# than let memory grow while the store is slow or failing.
MAX_UNAPPLIED_ROWS = 100_000
BACKPRESSURE_TIMEOUT_S = 30.0
# A read waits at most this long for answered records to reach the store, then reads.
READ_WAIT_S = 30.0


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
    # the write-ahead log segment holding the table once it is logged (request answered)
    segment: str | None = None
    # who sent it (an API key id, "" without keys): that caller's reads wait for it
    sender: str | None = None

    @property
    def size(self) -> int:
        return self.table.num_rows if self.table is not None else len(self.records)


_STOP = object()
_HURRY = object()  # a reader waits: store what is queued now instead of lingering


def synthetic_ids(event_id: str, tenant_id: str = "") -> tuple[str, str]:
    """A trace and span id for a native event that came without them, stable per event of
    a tenant (two tenants' events with one id are two events, in two traces)."""
    name = f"{tenant_id}{_KEY_SEP}{event_id}" if tenant_id else event_id
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:32], digest[32:48]


# joins the parts of a key (a tenant and an event id; a copy's tenant, provider and
# response id): ids cannot hold control characters
_KEY_SEP = "\x1f"


def idempotency_key(tenant_id: str, event_id: str, trace_id: str, span_id: str) -> str:
    """What a record is deduplicated by. An id an app chose (a native event's, a span's
    ``tenantscope.event_id``) is unique within its tenant: another tenant may use it too,
    and must neither lose its record nor learn the id was taken. A span's default id
    (``trace_id:span_id``, random ids) is unique by itself: a re-sent span counts once
    whatever tenant its request resolved it to."""
    if event_id == f"{trace_id}:{span_id}":
        return event_id
    return f"{tenant_id}{_KEY_SEP}{event_id}"


def key_of_record(record: UsageRecord) -> str:
    return idempotency_key(record.tenant_id, record.event_id, record.trace_id, record.span_id)


class _Rows:
    """The idempotency keys (``idempotency_key``), event ids, traces and start times of a
    batch's jobs, records and table rows alike, read once; which job first sent each key
    (later copies in the batch are dropped)."""

    def __init__(self) -> None:
        # first copies: key, event id, trace, start, stamped
        self.ids: list[tuple[str, str, str, datetime, bool]] = []
        self.per_job: list[list[str]] = []  # keys each job sent first
        self.traces: list[list[tuple[str, str, datetime]]] = []  # first copies per job
        self.all_traces: list[list[tuple[str, str, datetime]]] = []
        self._first_job: dict[str, int] = {}
        self._priced: set[str] = set()

    @classmethod
    def of(cls, jobs: list[_Job]) -> _Rows:
        rows = cls()
        for j, job in enumerate(jobs):
            if job.table is not None:
                table = job.table
                ids = table.column("event_id").to_pylist()
                traces = table.column("trace_id").to_pylist()
                keys = [
                    idempotency_key(tenant, i, t, span)
                    for tenant, i, t, span in zip(
                        table.column("tenant_id").to_pylist(),
                        ids,
                        traces,
                        table.column("span_id").to_pylist(),
                        strict=True,
                    )
                ]
                starts = table.column("start_time").to_pylist()
                stamped = [False] * len(ids)  # spans carry their own start times
            else:
                ids = [r.event_id for r in job.records]
                keys = [key_of_record(r) for r in job.records]
                traces = [r.trace_id for r in job.records]
                starts = [to_utc_naive(r.start_time) for r in job.records]
                stamped = [r.start_time == r.received_at for r in job.records]
            mine: list[str] = []
            mine_traces: list[tuple[str, str, datetime]] = []
            for k, i, t, s, st in zip(keys, ids, traces, starts, stamped, strict=True):
                if k in rows._first_job:
                    continue
                rows._first_job[k] = j
                rows.ids.append((k, i, t, s, st))
                mine.append(k)
                mine_traces.append((k, t, s))
                if job.table is not None:
                    rows._priced.add(k)
            rows.per_job.append(mine)
            rows.traces.append(mine_traces)
            rows.all_traces.append(
                list(zip(keys, traces, starts, strict=True)) if job.table is not None else []
            )
        return rows

    def first_id(self, key: str, job: int) -> bool:
        """Whether ``job`` is the one that sent this key first in the batch."""
        return self._first_job.get(key) == job

    def unpriced(self, key: str) -> bool:
        return key not in self._priced


def _next(q: queue.Queue[_Job | object], deadline: float) -> _Job | object | None:
    """The next item of ``q``, waiting until the monotonic ``deadline``; None if none."""
    remaining = deadline - time.monotonic()
    try:
        return q.get(timeout=remaining) if remaining > 0 else q.get_nowait()
    except queue.Empty:
        return None


class BatchWriter:
    def __init__(
        self,
        store: EventStore,
        price: Callable[[UsageRecord], None],
        *,
        max_batch: int = 50_000,
        trace_window: timedelta = DEFAULT_TRACE_WINDOW,
        dedupe_window: timedelta = DEFAULT_DEDUPE_WINDOW,
        wal: WriteAheadLog | None = None,
        linger: float = DEFAULT_LINGER_S,
        max_unapplied: int = MAX_UNAPPLIED_ROWS,
        response_window: timedelta = DEFAULT_RESPONSE_WINDOW,
    ) -> None:
        self._store = store
        self._price = price
        self._max_batch = max_batch
        self._window = trace_window
        self._dedupe_window = dedupe_window
        self._wal = wal
        self._linger = linger
        self._max_unapplied = max_unapplied
        self._response_window = response_window
        self._queue: queue.Queue[_Job | object] = queue.Queue()
        self._log_queue: queue.Queue[_Job | object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._log_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = False
        # logged jobs answered / stored, in one order; readers wait on these
        self._state = threading.Condition()
        self._acked = 0
        self._applied = 0
        # of the logged jobs not yet stored: (number, when answered), in order, and the
        # number of each sender's last one
        self._answered: collections.deque[tuple[int, float]] = collections.deque()
        self._last_of: dict[str, int] = {}
        self._unapplied_rows = 0
        self._waiters: list[tuple[int, Future[None]]] = []
        self.batches = 0
        self.records_written = 0
        self.duplicates = 0
        self.failures = 0
        # why logged records cannot be stored, while that lasts (readiness reports it)
        self.apply_error: str | None = None
        # told of each batch's new records once they are stored, with the batch's number
        # (``batches``): the limiter settles reservations by them (limits/limiter.py)
        self.on_stored: Callable[[list[UsageRecord], list[pa.Table], int], None] | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Apply what an earlier run left in the log (before any new write), then start."""
        with self._lock:
            if self._thread is not None:
                return
            if self._wal is not None:
                self._apply_pending(self._wal)
            self._stopping = False
            self._thread = threading.Thread(
                target=self._run, name="tenantscope-writer", daemon=True
            )
            self._thread.start()
            if self._wal is not None:
                self._log_thread = threading.Thread(
                    target=self._log_run, name="tenantscope-wal", daemon=True
                )
                self._log_thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Store everything queued, then stop; what could not be stored stays logged."""
        with self._lock:
            thread, self._thread = self._thread, None
            log_thread, self._log_thread = self._log_thread, None
        if log_thread is not None:
            self._log_queue.put(_STOP)
            log_thread.join(timeout)
        if thread is not None:
            self._stopping = True  # a batch failing now stays logged, for the next start
            self._queue.put(_STOP)
            thread.join(timeout)
        if self._wal is not None:
            self._wal.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _apply_pending(self, wal: WriteAheadLog) -> None:
        jobs: list[_Job] = []
        size = total = 0
        for table in wal.pending():
            # not marked resolved: a trace may span several of these requests
            jobs.append(_Job([], Future(), False, table))
            size += table.num_rows
            if size >= self._max_batch:
                self._write_batch(jobs)
                total, jobs, size = total + size, [], 0
        if jobs:
            self._write_batch(jobs)
            total += size
        wal.forget_pending()
        if total:
            log.info("stored %d records left in the write-ahead log by the last run", total)

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

    async def write_table(self, table: pa.Table, *, sender: str | None = None) -> WriteResult:
        """Like ``write`` for records already priced, resolved among themselves and
        converted with ``records_to_arrow`` (what the decode workers hand back). With a
        write-ahead log the answer comes once they are logged, and counts every row as
        accepted: copies of stored records are dropped later, when they are stored.
        ``sender``: who sent them (``wait_applied``'s ``reader``)."""
        fut: Future[WriteResult] = Future()
        if table.num_rows == 0:
            return WriteResult(0, 0)
        if not self.running:
            raise Unavailable("the ingest writer is not running")
        job = _Job([], fut, True, table, sender=sender)
        (self._queue if self._wal is None else self._log_queue).put(job)
        return await asyncio.wrap_future(fut)

    @property
    def wal_dir(self) -> str | None:
        """Where decode workers log their requests' spans (None: no write-ahead log)."""
        return None if self._wal is None else str(self._wal.directory)

    async def room(self) -> None:
        """Wait while the store is too far behind the log (then refuse, with a 503)."""
        if self._unapplied_rows >= self._max_unapplied:
            await asyncio.to_thread(self._wait_for_room)

    def _wait_for_room(self) -> None:
        with self._state:
            room = self._state.wait_for(
                lambda: self._unapplied_rows < self._max_unapplied, BACKPRESSURE_TIMEOUT_S
            )
        if not room:
            raise Unavailable(
                f"the event store is behind by {self._unapplied_rows} records"
                f" ({self.apply_error or 'busy'}); retry later"
            )

    def write_logged(self, logged: Logged, *, sender: str | None = None) -> WriteResult:
        """Take a batch a decode worker logged (answered once this returns): it is read
        from the log and queued for the store. ``sender`` as for ``write_table``."""
        if self._wal is None or not self.running:
            raise Unavailable("the ingest writer is not running")
        table = self._wal.adopt(logged)
        self._enqueue_logged(
            [_Job([], Future(), True, table, segment=logged.segment, sender=sender)]
        )
        return WriteResult(logged.rows, 0)

    def write_sync(self, records: Sequence[UsageRecord], timeout: float = 60.0) -> WriteResult:
        return self.submit(records).result(timeout)

    async def wait_applied(
        self, timeout: float = READ_WAIT_S, *, reader: str | None = None, lag: float = 0.0
    ) -> None:
        """Return once the records a read must see are in the store: with no ``lag``,
        every record answered so far; else those answered to ``reader`` (the sender it
        is: a read sees its own writes) and those answered to anyone more than ``lag``
        seconds ago. At most ``timeout`` seconds: then the store is failing or far
        behind, and the read goes ahead."""
        with self._state:
            target = self._target(reader, lag)
            if self._applied >= target:
                return
            fut: Future[None] = Future()
            self._waiters.append((target, fut))
        self._queue.put(_HURRY)
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), timeout)
        except TimeoutError:
            log.warning(
                "a read went ahead before all answered records were stored (%s)",
                self.apply_error or "the store is behind",
            )

    def _target(self, reader: str | None, lag: float) -> int:
        """The number of the last answered job a read waits for (under ``_state``)."""
        if lag <= 0:
            return self._acked
        target = self._last_of.get(reader, 0) if reader is not None else 0
        cutoff = time.monotonic() - lag
        for number, answered in self._answered:  # in order of number and of time
            if answered > cutoff:
                break
            target = max(target, number)
        return target

    # -- the log thread ----------------------------------------------------------------
    def _log_run(self) -> None:
        assert self._wal is not None
        while True:
            first = self._log_queue.get()
            if first is _STOP:
                return
            assert isinstance(first, _Job)
            jobs = [first]
            while (nxt := _next(self._log_queue, 0.0)) is not None and nxt is not _STOP:
                assert isinstance(nxt, _Job)
                jobs.append(nxt)
            stop_after = nxt is _STOP
            self._log_jobs(self._wal, jobs)
            if stop_after:
                return

    def _log_jobs(self, wal: WriteAheadLog, jobs: list[_Job]) -> None:
        rows = sum(j.size for j in jobs)
        try:
            self._wait_for_room()  # back-pressure: while the store is far behind, senders wait
        except Unavailable as behind:
            for job in jobs:
                job.future.set_exception(behind)
            return
        try:
            segment = wal.append([j.table for j in jobs if j.table is not None])
        except Exception as exc:
            log.exception("writing %d records to the write-ahead log failed", rows)
            err = Unavailable(f"storing the records failed: {exc}")
            for job in jobs:
                job.future.set_exception(err)
            return
        for job in jobs:
            job.segment = segment
        self._enqueue_logged(jobs)
        for job in jobs:
            job.future.set_result(WriteResult(job.size, 0))

    def _enqueue_logged(self, jobs: list[_Job]) -> None:
        # counted and queued in one step, before the requests are answered: a read after
        # an answer waits for that request's job (jobs are stored in queue order)
        now = time.monotonic()
        with self._state:
            self._unapplied_rows += sum(j.size for j in jobs)
            for job in jobs:
                self._acked += 1
                self._answered.append((self._acked, now))
                if job.sender is not None:
                    self._last_of[job.sender] = self._acked
                self._queue.put(job)

    # -- the writer thread -------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            if first is _HURRY:
                continue
            assert isinstance(first, _Job)
            jobs = [first]
            size = first.size
            stop_after = False
            # only logged jobs linger: nobody waits for them, unless a reader does
            linger = self._linger if first.segment is not None and not self._waiters else 0.0
            deadline = time.monotonic() + linger
            while size < self._max_batch:
                nxt = _next(self._queue, deadline)
                if nxt is None:
                    break
                if nxt is _STOP:
                    stop_after = True
                    break
                if nxt is _HURRY:
                    deadline = 0.0
                    continue
                assert isinstance(nxt, _Job)
                jobs.append(nxt)
                size += nxt.size
                if nxt.segment is None:  # its request waits for the store
                    deadline = 0.0
            self._apply(jobs, size)
            if stop_after:
                return

    def _apply(self, jobs: list[_Job], size: int) -> None:
        try:
            results = self._write_batch(jobs)
        except Exception as exc:  # a failed batch fails its requests, not the server
            self.failures += 1
            log.exception("writing a batch of %d records failed", size)
            err = Unavailable(f"storing the records failed: {exc}")
            for job in jobs:
                if job.segment is None:
                    job.future.set_exception(err)
            logged = [j for j in jobs if j.segment is not None]
            if logged:
                self._retry(logged, exc)
            return
        for job, res in zip(jobs, results, strict=True):
            if job.segment is None:
                job.future.set_result(res)
        self._stored([j for j in jobs if j.segment is not None])

    def _retry(self, jobs: list[_Job], exc: Exception) -> None:
        """Answered records must reach the store: retry, backing off, while it fails
        (readiness says why). Stopping leaves them in the log for the next start."""
        self.apply_error = str(exc)
        delay = 0.1
        while not self._stopping:
            time.sleep(delay)
            delay = min(5.0, delay * 2)
            try:
                self._write_batch(jobs)
            except Exception as again:
                self.failures += 1
                self.apply_error = str(again)
                log.warning("storing %d logged records failed again: %s", len(jobs), again)
                continue
            self.apply_error = None
            self._stored(jobs)
            return

    def _stored(self, jobs: list[_Job]) -> None:
        """Logged jobs are in the store: their log may go, their readers may read."""
        if not jobs:
            return
        assert self._wal is not None
        for segment, count in Counter(j.segment for j in jobs).items():
            assert segment is not None
            self._wal.applied(segment, count)
        with self._state:
            self._applied += len(jobs)
            self._unapplied_rows -= sum(j.size for j in jobs)
            while self._answered and self._answered[0][0] <= self._applied:
                self._answered.popleft()
            for sender in [s for s, n in self._last_of.items() if n <= self._applied]:
                del self._last_of[sender]
            ready = [f for t, f in self._waiters if t <= self._applied]
            self._waiters = [(t, f) for t, f in self._waiters if t > self._applied]
            self._state.notify_all()
        for fut in ready:
            fut.set_result(None)

    def _write_batch(self, jobs: list[_Job]) -> list[WriteResult]:
        stored: dict[str, list[UsageRecord]] | None = None
        if all(j.table is not None and j.resolved for j in jobs):
            done, stored = self._write_tables(jobs)
            if done is not None:
                return done
        rows = _Rows.of(jobs)
        stored_by_trace = self._stored_traces(rows) if stored is None else stored
        stored_ids = self._stored_ids(rows, stored_by_trace)
        inserts, updates, tables, replaced = self._resolve(jobs, rows, stored_ids, stored_by_trace)
        for r in inserts:
            if rows.unpriced(key_of_record(r)):
                self._price(r)
        tables = self._copies(inserts, updates, tables, replaced)
        self._store.write(inserts, updates, tables=tables, replaced=replaced)
        self.batches += 1
        self.records_written += len(inserts) + sum(t.num_rows for t in tables)
        self._tell_stored(inserts, tables)
        results: list[WriteResult] = []
        for job, ids in zip(jobs, rows.per_job, strict=True):
            # an id repeated inside the batch is accepted for the job that sent it first
            accepted = sum(1 for i in ids if i not in stored_ids)
            results.append(WriteResult(accepted, job.size - accepted))
        self.duplicates += sum(r.duplicates for r in results)
        return results

    def _write_tables(
        self, jobs: list[_Job]
    ) -> tuple[list[WriteResult] | None, dict[str, list[UsageRecord]]]:
        """The common batch, column-wise: decode workers' tables (each resolved within its
        request) of spans with default ids, no id twice in the batch and none stored yet.
        Returns (results, stored records of its traces), or (None, those records) for
        any other batch, which the row-wise path then writes."""
        columns = {
            name: pa.chunked_array(
                [c for j in jobs if j.table is not None for c in j.table.column(name).chunks]
            )
            for name in ("event_id", "trace_id", "span_id", "start_time")
        }
        ids, traces = columns["event_id"], columns["trace_id"]
        bounds = pc.min_max(columns["start_time"]).as_py()
        stored = self._trace_records(pc.unique(traces).to_pylist(), bounds["min"], bounds["max"])
        default_ids = pc.equal(ids, pc.binary_join_element_wise(traces, columns["span_id"], ":"))
        known = [s.event_id for records in stored.values() for s in records]
        if (
            not pc.all(default_ids).as_py()  # ids of their own: looked up row by row
            or pc.count_distinct(ids).as_py() != len(ids)
            or (known and pc.any(pc.is_in(ids, value_set=pa.array(known, pa.string()))).as_py())
        ):
            return None, stored
        # traces with spans stored, or in several requests, are resolved again as a whole
        per_job = pc.value_counts(
            pa.chunked_array([pc.unique(j.table.column("trace_id")) for j in jobs if j.table])
        )
        several = pc.filter(per_job.field("values"), pc.greater(per_job.field("counts"), 1))
        redo = (set(stored) | set(several.to_pylist())) - {""}
        tables: list[pa.Table] = []
        inserts: list[UsageRecord] = []
        redo_values = pa.array(sorted(redo), pa.string())
        for job in jobs:
            assert job.table is not None
            in_redo = pc.is_in(job.table.column("trace_id"), value_set=redo_values)
            if redo and pc.any(in_redo).as_py():
                tables.append(job.table.filter(pc.invert(in_redo)))
                inserts += arrow_to_records(job.table.filter(in_redo))
            else:
                tables.append(job.table)
        updates, replaced = self._reresolve(inserts, stored)
        tables = self._copies(inserts, updates, tables, replaced)
        tables = [t for t in tables if t.num_rows]
        self._store.write(inserts, updates, tables=tables, replaced=replaced)
        self.batches += 1
        self.records_written += len(ids)
        self._tell_stored(inserts, tables)
        return [WriteResult(j.size, 0) for j in jobs], stored

    def _tell_stored(self, inserts: list[UsageRecord], tables: list[pa.Table]) -> None:
        if self.on_stored is None:
            return
        try:
            self.on_stored(inserts, tables, self.batches)
        except Exception:  # the batch is stored; a listener's failure must not undo that
            log.exception("a listener of stored records failed")

    def _stored_traces(self, rows: _Rows) -> dict[str, list[UsageRecord]]:
        """The stored records of the batch's traces, within the trace window around it."""
        traces = {t for j in rows.traces for _, t, _ in j if t}
        starts = [s for _, _, _, s, _ in rows.ids]
        return self._trace_records(list(traces), min(starts), max(starts)) if traces else {}

    def _trace_records(
        self, traces: list[str], first: datetime, last: datetime
    ) -> dict[str, list[UsageRecord]]:
        """The stored records of ``traces`` between ``first`` and ``last`` (a batch's
        start times), widened by the trace window."""
        out: dict[str, list[UsageRecord]] = {}
        found = self._store.trace_records(
            sorted(t for t in traces if t), first - self._window, last + self._window
        )
        for s in found:
            out.setdefault(s.trace_id, []).append(s)
        return out

    def _stored_ids(self, rows: _Rows, stored_by_trace: dict[str, list[UsageRecord]]) -> set[str]:
        """Which of the batch's new keys are stored already.

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
        for k, i, t, start, stamped in rows.ids:
            if by_trace_read and not stamped and t and k == i and i.startswith(t + ":"):
                if i in known:
                    found.add(k)
            else:
                ask.append((i, start, stamped))
        for stamped, margin in ((False, RETRY_SKEW), (True, self._dedupe_window)):
            group = [(i, t) for i, t, s in ask if s is stamped]
            if group:
                pairs = self._store.existing_event_keys(
                    [i for i, _ in group],
                    min(t for _, t in group) - margin,
                    max(t for _, t in group) + margin,
                )
                # a default-form key is the event id itself; an app's id goes with its tenant
                found |= {f"{tenant}{_KEY_SEP}{i}" for tenant, i in pairs}
                found |= {i for _, i in pairs}
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
        new_ids = {k for k, _, _, _, _ in rows.ids if k not in stored_ids}
        by_trace: dict[str, set[int]] = {}  # trace -> jobs with new rows in it
        count: dict[str, int] = {}
        for j, job in enumerate(jobs):
            for event_id, trace_id, _ in rows.traces[j]:
                if event_id in new_ids and trace_id:
                    by_trace.setdefault(trace_id, set()).add(j if job.resolved else -1)
                    count[trace_id] = count.get(trace_id, 0) + 1
        redo = {
            t
            for t, js in by_trace.items()
            if t in stored or (count[t] > 1 and (len(js) > 1 or -1 in js))
        }
        inserts: list[UsageRecord] = []
        tables: list[pa.Table] = []
        for j, job in enumerate(jobs):
            if job.table is None:
                seen_here: set[str] = set()
                for r in job.records:
                    key = key_of_record(r)
                    if key in new_ids and rows.first_id(key, j) and key not in seen_here:
                        inserts.append(r)
                    seen_here.add(key)
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
        updates, replaced = self._reresolve([r for r in inserts if r.trace_id in redo], stored)
        return inserts, updates, tables, replaced

    def _reresolve(
        self, new: list[UsageRecord], stored_by_trace: dict[str, list[UsageRecord]]
    ) -> tuple[list[UsageRecord], list[UsageRecord]]:
        """Resolve the traces of ``new`` records together with their stored records:
        (stored records whose attribution changed, their stored versions)."""
        updates: list[UsageRecord] = []
        new_by_trace: dict[str, list[UsageRecord]] = {}
        for r in new:
            new_by_trace.setdefault(r.trace_id, []).append(r)
        replaced: list[UsageRecord] = []
        for trace_id, trace_new in new_by_trace.items():
            old = stored_by_trace.get(trace_id, [])
            # the stored versions, as they are until this batch commits: the store takes
            # their rollup figures back out without looking them up again
            before = {id(s): (attribution_key(s), s.replace()) for s in old}
            resolve_trace([*old, *trace_new])  # in place
            for s in old:
                key, original = before[id(s)]
                if attribution_key(s) != key:
                    updates.append(s)
                    replaced.append(original)
        return updates, replaced

    def _copies(
        self,
        inserts: list[UsageRecord],
        updates: list[UsageRecord],
        tables: list[pa.Table],
        replaced: list[UsageRecord],
    ) -> list[pa.Table]:
        """Count each provider response once (``ingest/duplicates.py``) over the batch and
        the stored records: extends ``inserts`` (with table rows that have copies),
        ``updates`` and ``replaced`` in place, drops updates that end as they were stored,
        and returns the tables left as they are."""
        keys: dict[Key, set[str]] = {}
        starts: list[datetime] = []
        batch: dict[tuple[str, str], UsageRecord] = {}
        for r in (*inserts, *updates):
            batch[r.trace_id, r.event_id] = r
            if is_candidate(r):
                keys.setdefault(key_of(r), set()).add(f"{r.trace_id}:{r.event_id}")
                starts.append(to_utc_naive(r.start_time))
        # per table: which rows are candidates and every row's copy key, worked out once
        masks: list[tuple[pa.ChunkedArray, pa.ChunkedArray] | None] = []
        for table in tables:
            mask = _candidate_rows(table) if table.num_rows else None
            rows = table.filter(mask) if mask is not None else table
            if not rows.num_rows:
                masks.append(None)
                continue
            joined = _key_column(table)
            masks.append((mask, joined))
            for key, trace_id, event_id in zip(
                joined.filter(mask).to_pylist(),
                rows.column("trace_id").to_pylist(),
                rows.column("event_id").to_pylist(),
                strict=True,
            ):
                keys.setdefault(_split_key(key), set()).add(f"{trace_id}:{event_id}")
            bounds = pc.min_max(rows.column("start_time")).as_py()
            starts += [bounds["min"], bounds["max"]]
        if not keys:
            _drop_unchanged(updates, replaced)
            return tables
        found = self._store.response_records(
            sorted({k[2] for k in keys}),
            min(starts) - self._response_window,
            max(starts) + self._response_window,
        )
        stored: list[UsageRecord] = []
        for s in found:
            if (s.trace_id, s.event_id) in batch:
                continue  # the batch's version of it is the one that counts now
            stored.append(s)
            if is_candidate(s):
                keys.setdefault(key_of(s), set()).add(f"{s.trace_id}:{s.event_id}")
        copied = {k for k, ids in keys.items() if len(ids) > 1}
        copied |= {key_of(r) for r in (*updates, *stored) if r.shadow_reason.startswith(DUPLICATE)}
        if not copied:
            _drop_unchanged(updates, replaced)
            return tables
        wanted = pa.array(sorted(_KEY_SEP.join(k) for k in copied), pa.string())
        kept: list[pa.Table] = []
        for table, masked in zip(tables, masks, strict=True):
            if masked is None:
                kept.append(table)
                continue
            mask, joined = masked
            take = pc.and_(mask, pc.is_in(joined, value_set=wanted))
            if not pc.any(take).as_py():
                kept.append(table)
                continue
            inserts += arrow_to_records(table.filter(take))
            kept.append(table.filter(pc.invert(take)))
        group = [r for r in (*inserts, *updates, *stored) if key_of(r) in copied]
        before = {id(s): (attribution_key(s), s.replace()) for s in stored}
        resolve_duplicates(group)
        for s in stored:
            key, original = before[id(s)]
            if attribution_key(s) != key:
                updates.append(s)
                replaced.append(original)
        _drop_unchanged(updates, replaced)
        return kept


def _drop_unchanged(updates: list[UsageRecord], replaced: list[UsageRecord]) -> None:
    """Drop, in place, the updates whose attribution ends as it was stored (a trace
    re-resolved, then the same copy chosen again)."""
    by_id = {(u.trace_id, u.event_id): u for u in updates}
    same = {
        (r.trace_id, r.event_id)
        for r in replaced
        if (u := by_id.get((r.trace_id, r.event_id))) is not None
        and attribution_key(u) == attribution_key(r)
    }
    if same:
        updates[:] = [u for u in updates if (u.trace_id, u.event_id) not in same]
        replaced[:] = [r for r in replaced if (r.trace_id, r.event_id) not in same]


def _candidate_rows(table: pa.Table) -> pa.ChunkedArray:
    """Which rows of a decode worker's table are candidates (``duplicates.is_candidate``;
    workers resolve traces only, so no row is a duplicate yet)."""
    return pc.and_(
        pc.and_(
            pc.equal(table.column("kind"), "llm"), pc.not_equal(table.column("response_id"), "")
        ),
        pc.invert(table.column("shadowed")),
    )


def _key_column(table: pa.Table) -> pa.ChunkedArray:
    return pc.binary_join_element_wise(
        table.column("tenant_id"), table.column("provider"), table.column("response_id"), _KEY_SEP
    )


def _split_key(text: str) -> Key:
    tenant, provider, response_id = text.split(_KEY_SEP)
    return tenant, provider, response_id
