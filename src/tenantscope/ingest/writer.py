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
from datetime import timedelta

from tenantscope.errors import Unavailable
from tenantscope.ingest.attribution import attribution_key, resolve_trace
from tenantscope.records import UsageRecord
from tenantscope.storage.base import EventStore

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


_STOP = object()


def synthetic_ids(event_id: str) -> tuple[str, str]:
    """A trace and span id for a native event that came without them, stable per event."""
    digest = hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:32], digest[32:48]


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
            size = len(first.records)
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
                size += len(nxt.records)
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
        seen: set[str] = set()
        fresh: list[UsageRecord] = []
        per_job_fresh: list[list[str]] = []
        # event id -> index of its job when that job came resolved, else -1
        origin: dict[str, int] = {}
        for j, job in enumerate(jobs):
            ids: list[str] = []
            for r in job.records:
                if r.event_id in seen:
                    continue
                seen.add(r.event_id)
                fresh.append(r)
                ids.append(r.event_id)
                origin[r.event_id] = j if job.resolved else -1
            per_job_fresh.append(ids)
        stored_ids = self._stored_ids(fresh)
        if stored_ids:
            fresh = [r for r in fresh if r.event_id not in stored_ids]
        inserts, updates = self._resolve(fresh, origin)
        for r in inserts:
            self._price(r)
        self._store.write(inserts, updates)
        self.batches += 1
        self.records_written += len(inserts)
        results: list[WriteResult] = []
        for job, ids in zip(jobs, per_job_fresh, strict=True):
            # an id repeated inside the batch is accepted for the job that sent it first
            accepted = sum(1 for i in ids if i not in stored_ids)
            results.append(WriteResult(accepted, len(job.records) - accepted))
        self.duplicates += sum(r.duplicates for r in results)
        return results

    def _stored_ids(self, fresh: list[UsageRecord]) -> set[str]:
        """Which of these records' ids are stored already.

        A re-sent span or event carries its original's start time, so the look-up is
        bounded by the batch's own time range (plus ``RETRY_SKEW``) and the store skips all
        older data. Only
        records stamped with their arrival time (events sent without a timestamp) are
        looked for within the wider dedupe window, since a retry of them arrives later."""
        exact = [r for r in fresh if r.start_time != r.received_at]
        stamped = [r for r in fresh if r.start_time == r.received_at]
        found: set[str] = set()
        for group, margin in ((exact, RETRY_SKEW), (stamped, self._dedupe_window)):
            if group:
                found |= self._store.existing_event_ids(
                    [r.event_id for r in group],
                    min(r.start_time for r in group) - margin,
                    max(r.start_time for r in group) + margin,
                )
        return found

    def _resolve(
        self, fresh: list[UsageRecord], origin: dict[str, int]
    ) -> tuple[list[UsageRecord], list[UsageRecord]]:
        traced = [r for r in fresh if r.trace_id]
        if not traced:
            return fresh, []
        by_trace: dict[str, list[UsageRecord]] = {}
        for r in traced:
            by_trace.setdefault(r.trace_id, []).append(r)
        lo = min(r.start_time for r in traced) - self._window
        hi = max(r.start_time for r in traced) + self._window
        stored = self._store.trace_records(list(by_trace), lo, hi)
        stored_by_trace: dict[str, list[UsageRecord]] = {}
        for s in stored:
            stored_by_trace.setdefault(s.trace_id, []).append(s)
        fresh_ids = {r.event_id for r in traced}
        updates: list[UsageRecord] = []
        for trace_id, new in by_trace.items():
            old = stored_by_trace.get(trace_id, [])
            if not old and len(new) == 1:
                continue  # a lone new span: nothing to inherit or shadow yet
            if not old:
                jobs_of = {origin[r.event_id] for r in new}
                if len(jobs_of) == 1 and -1 not in jobs_of:
                    continue  # the whole trace so far came in one request, resolved there
            before = {s.event_id: attribution_key(s) for s in old}
            for r in resolve_trace([*old, *new]):  # resolves in place
                if r.event_id not in fresh_ids and attribution_key(r) != before[r.event_id]:
                    updates.append(r)
        return fresh, updates
