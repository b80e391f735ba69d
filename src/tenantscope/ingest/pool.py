"""OTLP decoding and normalisation, in worker processes when the machine has cores to spare.

Decoding protobuf into attribute dicts and normalising each span is pure Python work per
span; in the server process it competes for the interpreter lock with the writer and the
API. ``DecodePool(workers=N)`` runs it in N worker processes (spawned, so no lock or DuckDB
handle is inherited) and ships records back as plain tuples, which pickle cheaply.
``workers=0`` decodes in the calling thread.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import operator
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
from starlette.concurrency import run_in_threadpool

from tenantscope.errors import TenantscopeError
from tenantscope.ingest.attribution import resolve_trace
from tenantscope.ingest.gc_tuning import tune_for_ingest
from tenantscope.ingest.normalize import normalize_span
from tenantscope.ingest.otlp import decode_traces
from tenantscope.ingest.wal import Logged, SegmentAppender
from tenantscope.pricing.catalog import infer_provider
from tenantscope.pricing.pricer import Pricer
from tenantscope.records import RECORD_FIELDS, UsageRecord
from tenantscope.storage.base import PriceOverride
from tenantscope.storage.serialize import records_to_arrow

log = logging.getLogger("tenantscope.ingest")

MAX_REPORTED_ERRORS = 10
_AS_TUPLE = operator.attrgetter(*RECORD_FIELDS)

Decoded = tuple[list[UsageRecord], int, list[str]]
# (generation, overrides): a worker keeps one Pricer per generation of the overrides
PricesSnapshot = tuple[int, tuple[PriceOverride, ...]]


def decode_otlp(
    body: bytes, content_type: str | None, encoding: str | None, max_bytes: int
) -> Decoded:
    """Decode an OTLP request, normalise its spans and resolve attribution among them:
    (records, rejected, messages). Raises TenantscopeError for a body that is not OTLP."""
    decoded = decode_traces(body, content_type, encoding, max_bytes=max_bytes)
    received = datetime.now(timezone.utc)
    records: list[UsageRecord] = []
    rejected = decoded.rejected
    errors = list(decoded.errors)
    for span in decoded.spans:
        try:
            records.append(
                normalize_span(span, received_at=received, infer_provider=infer_provider)
            )
        except TenantscopeError as exc:
            rejected += 1
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(f"span {span.span_id}: {exc.message}")
    # Resolve the traces of this request here, off the writer thread; the writer then only
    # re-resolves traces that also have spans stored or in other requests.
    by_trace: dict[str, list[UsageRecord]] = {}
    for r in records:
        by_trace.setdefault(r.trace_id, []).append(r)
    for group in by_trace.values():
        if len(group) > 1:
            resolve_trace(group)
    return records, rejected, errors


_pricers: dict[int, Pricer] = {}


def decode_otlp_table(
    body: bytes,
    content_type: str | None,
    encoding: str | None,
    max_bytes: int,
    overrides: PricesSnapshot,
) -> tuple[pa.Table, int, list[str]]:
    """``decode_otlp``, then price the records (with the operator's overrides as the
    server saw them) and convert them to Arrow: everything about a request's spans that
    needs no stored state, so the server's single writer thread only checks, resolves
    and appends."""
    records, rejected, errors = decode_otlp(body, content_type, encoding, max_bytes)
    generation, current = overrides
    pricer = _pricers.get(generation)
    if pricer is None:
        _pricers.clear()  # one generation at a time per process
        pricer = _pricers[generation] = Pricer(current)
    for r in records:
        pricer.apply(r)
    return records_to_arrow(records), rejected, errors


_appenders: dict[str, SegmentAppender] = {}


def decode_otlp_logged(
    body: bytes,
    content_type: str | None,
    encoding: str | None,
    max_bytes: int,
    overrides: PricesSnapshot,
    wal_dir: str | None,
) -> tuple[Logged | pa.Table, int, list[str]]:
    """``decode_otlp_table`` in a worker process, the table then logged in the worker's
    own write-ahead log segment (fsynced): the server gets where it is, not the rows.
    Without a log (``wal_dir`` None) the table itself."""
    table, rejected, errors = decode_otlp_table(body, content_type, encoding, max_bytes, overrides)
    if wal_dir is None or table.num_rows == 0:
        return table, rejected, errors
    appender = _appenders.get(wal_dir)
    if appender is None:
        appender = _appenders[wal_dir] = SegmentAppender(Path(wal_dir), f"w{os.getpid()}")
    segment, offset = appender.append(table)
    return Logged(segment, offset, table.num_rows, appender.take_closed()), rejected, errors


def _decode_here(*args: Any) -> tuple[Logged | pa.Table, int, list[str]]:
    """``decode_otlp_logged``'s arguments, decoded in this process (logged by the server)."""
    *decode_args, _wal_dir = args
    return decode_otlp_table(*decode_args)


def _decode_in_worker(
    body: bytes, content_type: str | None, encoding: str | None, max_bytes: int
) -> tuple[list[tuple[Any, ...]], int, list[str]]:
    records, rejected, errors = decode_otlp(body, content_type, encoding, max_bytes)
    return [_AS_TUPLE(r) for r in records], rejected, errors


def _warm_up(parent: int) -> None:
    """Prime the catalog in a fresh worker, and make the worker leave with its server: a
    worker blocks waiting for work and would otherwise outlive a server killed hard."""
    infer_provider("gpt-4o")
    tune_for_ingest()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="tenantscope-parent-watch", daemon=True).start()


class DecodePool:
    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.restarts = 0
        self._executor: ProcessPoolExecutor | None = self._start() if workers > 0 else None

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_warm_up,
            initargs=(os.getpid(),),
        )

    async def decode(
        self, body: bytes, content_type: str | None, encoding: str | None, max_bytes: int
    ) -> Decoded:
        args = (body, content_type, encoding, max_bytes)
        # rows either way (in this process too), so both answers have one shape
        rows, rejected, errors = await self._run(_decode_in_worker, _decode_in_worker, args)
        return [UsageRecord(*row) for row in rows], rejected, errors

    async def decode_logged(
        self,
        body: bytes,
        content_type: str | None,
        encoding: str | None,
        max_bytes: int,
        overrides: PricesSnapshot,
        wal_dir: str | None,
    ) -> tuple[Logged | pa.Table, int, list[str]]:
        """Decoded, priced records, logged by the worker (``Logged``), or as an Arrow
        table when decoded in this process (no workers, or a worker died) or when there
        is no log (``wal_dir`` None)."""
        args = (body, content_type, encoding, max_bytes, overrides, wal_dir)
        result: tuple[Logged | pa.Table, int, list[str]] = await self._run(
            decode_otlp_logged, _decode_here, args
        )
        return result

    async def _run(
        self, in_worker: Callable[..., Any], here: Callable[..., Any], args: tuple[Any, ...]
    ) -> Any:
        """``in_worker(*args)`` in a worker process, or ``here(*args)`` in a thread when
        there are no workers, or when a worker died (killed, out of memory): then new
        workers start for the next requests and this one is still decoded, so the sender
        sees no failure."""
        executor = self._executor
        if executor is None:
            return await run_in_threadpool(here, *args)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, in_worker, *args)
        except BrokenProcessPool:
            log.warning("an ingest decode worker died; restarting the decode workers")
            if self._executor is executor:
                self.restarts += 1
                self._executor = self._start()
                executor.shutdown(wait=False, cancel_futures=True)
            return await run_in_threadpool(here, *args)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
