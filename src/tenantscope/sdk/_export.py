"""Background OTLP/HTTP export: a bounded queue, one worker thread, retries with backoff.

Why not ``BatchSpanProcessor`` + ``OTLPSpanExporter`` from opentelemetry-sdk as they are:
the processor's ``force_flush`` ignores its timeout (it blocks for as long as the exporter
retries) and its drops are visible only as a log line per drop, and the exporter logs every
failed batch at ERROR. The app must never wait on a collector that is down, and a dead
collector must be one log line, so this module keeps the parts that matter in its own
hands. The wire format comes from ``_encode`` (the same bytes as OpenTelemetry's
``encode_spans``, several times cheaper), with ``encode_spans`` as the fallback for values
outside its subset.

Behaviour: ``on_end`` appends to a deque and returns (no I/O, no lock). Past
``max_queue_size`` the oldest span is dropped and counted. The worker sends batches of up to
``max_export_batch_size`` every ``export_interval`` (sooner when a batch is full). One
batch is retried with exponential backoff (with jitter, honouring ``Retry-After``) on
connection errors, timeouts and 429/502/503/504 until ``export_timeout`` has passed; other
4xx answers are not retried. A batch that fails is dropped and counted. ``force_flush``
waits at most its timeout and reports whether everything queued before it was exported.
After ``fork()`` the child gets a fresh queue, thread and HTTP session.

With a disk spool (the default, ``_spool.py``) nothing is dropped for an outage: the POSTs
run on a thread of their own (``_poster.py``), and a batch it cannot take now -- the
collector down, refusing the key, or slow (that thread still busy) -- is written to the
spool by the export thread instead. After a failure, batches go straight to the spool for
1 s (doubling to 30 s while it lasts); then spooled batches are sent again, oldest first,
a few per round beside live ones. Only a full spool (its policy), its age limit or a batch
the collector rejects (4xx) loses spans, each counted.
"""

from __future__ import annotations

import collections
import gzip
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from tenantscope import __version__
from tenantscope.sdk._encode import Unsupported, encode_request
from tenantscope.sdk._poster import Job, Poster
from tenantscope.sdk._spool import Spool
from tenantscope.sdk._stats import Counters, internal_error, log_once

if TYPE_CHECKING:
    import requests

_RETRYABLE = frozenset({408, 429, 502, 503, 504})
_MAX_BACKOFF = 8.0
OK, REJECTED, FAILED, REFUSED = "ok", "rejected", "failed", "refused"
# With a spool: after a failed batch, the next ones go straight to disk for this long
# (doubling up to the cap while the collector stays down), then one is tried again
_DOWN_MIN_S = 1.0
_DOWN_MAX_S = 30.0
# spooled batches sent per export round while live spans wait, and when none do
_REPLAY_BUSY = 4
_REPLAY_IDLE = 64


class HttpSender:
    """POSTs encoded span batches to one OTLP/HTTP endpoint."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        timeout: float,
        compression: str = "gzip",
    ) -> None:
        self.url = url
        self.timeout = timeout
        self._gzip = compression == "gzip"
        self._headers = {
            "Content-Type": "application/x-protobuf",
            "User-Agent": f"tenantscope-python/{__version__}",
            **({"Content-Encoding": "gzip"} if self._gzip else {}),
            **headers,
        }
        self._stop = threading.Event()
        self._session: requests.Session | None = None

    def send(self, spans: Sequence[ReadableSpan]) -> bool:
        """True when the collector accepted the batch; never raises."""
        body = self.encode(spans)
        return body is not None and self.post(body) == OK

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes | None:
        """The request body of a batch (None: it cannot be encoded; logged once)."""
        try:
            body = _encode(spans)
        except Exception as exc:  # a span the encoder cannot handle: drop the batch
            log_once("encode", "tenantscope: could not encode spans (%s); batch dropped", exc)
            return None
        return gzip.compress(body, compresslevel=6) if self._gzip else body

    def post(self, body: bytes) -> str:
        """POST one body with retries until the timeout: ``OK``, ``REJECTED`` (an answer
        that retrying cannot change), ``REFUSED`` (the key was refused: 401 or 403) or
        ``FAILED`` (down, slow, or overloaded)."""
        if self._stop.is_set():
            return FAILED
        deadline = time.monotonic() + self.timeout
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                status, retry_after, detail = self._post(body, deadline)
            except Exception as exc:  # connection refused, timeout, DNS...
                status, detail = None, f"{type(exc).__name__}: {exc}"
            if status is not None and 200 <= status < 300:
                return OK
            if status in (401, 403):
                # a key missing, mistyped or revoked: retrying now cannot help, but spans
                # kept in the spool go out once the key is fixed
                log_once(
                    f"http:{status}",
                    "tenantscope: the collector at %s refused the API key (HTTP %s: %s); spans"
                    " are kept in the spool (or, without one, dropped) and counted",
                    self.url,
                    status,
                    detail,
                )
                return REFUSED
            if status is not None and status not in _RETRYABLE:
                log_once(
                    f"http:{status}",
                    "tenantscope: the collector at %s rejected spans with HTTP %s (%s); "
                    "they are dropped and counted (tenantscope.sdk.stats())",
                    self.url,
                    status,
                    detail,
                )
                return REJECTED
            backoff = min(_MAX_BACKOFF, 0.5 * 2**attempt) * random.uniform(0.8, 1.2)
            if retry_after is not None:
                backoff = min(retry_after, _MAX_BACKOFF)
            attempt += 1
            if time.monotonic() + backoff >= deadline or self._stop.is_set():
                log_once(
                    "unreachable",
                    "tenantscope: cannot export spans to %s (%s); the app is not affected, "
                    "spans are kept in the spool (or, without one, retried then dropped) and"
                    " counted (tenantscope.sdk.stats())",
                    self.url,
                    detail if status is None else f"HTTP {status}",
                )
                return FAILED
            if self._stop.wait(backoff):
                return FAILED

    def _post(self, body: bytes, deadline: float) -> tuple[int, float | None, str]:
        import requests  # a dependency of opentelemetry-exporter-otlp-proto-http

        if self._session is None:
            self._session = requests.Session()
        remaining = max(0.05, deadline - time.monotonic())
        response = self._session.post(self.url, data=body, headers=self._headers, timeout=remaining)
        retry_after = _retry_after(response.headers.get("Retry-After"))
        detail = response.text[:200] if response.status_code >= 300 else ""
        return response.status_code, retry_after, detail

    def stop(self) -> None:
        """Abort retries in progress (used at shutdown)."""
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        session, self._session = self._session, None
        if session is not None:
            try:
                session.close()
            except Exception:  # pragma: no cover - closing a pool never matters to the app
                pass

    def reset_after_fork(self) -> None:
        # the parent's pooled sockets and lock state must not be shared with the child
        self._session = None
        self._stop = threading.Event()


def _encode(spans: Sequence[ReadableSpan]) -> bytes:
    try:
        return encode_request(spans)
    except (Unsupported, UnicodeError):
        pass  # e.g. a mapping or a lone surrogate: OpenTelemetry's encoder decides
    except Exception as exc:  # a bug in the fast encoder must not cost the batch
        internal_error("span encoder", exc)
    return _encode_generic(spans)


def _encode_generic(spans: Sequence[ReadableSpan]) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    data: bytes = encode_spans(spans).SerializeToString()
    return data


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class BatchExporter(SpanProcessor):
    """Queue ended spans and export them from a background thread (see the module doc)."""

    def __init__(
        self,
        sender: Any,
        *,
        max_queue_size: int,
        max_export_batch_size: int,
        export_interval: float,
        shutdown_timeout: float,
        counters: Counters | None = None,
        spool: Callable[[], Spool | None] | None = None,
    ) -> None:
        # ``sender``: anything with send(spans) -> bool, stop(), close(), reset_after_fork();
        # with a spool also encode(spans) -> bytes | None and post(body) -> OK/REJECTED/FAILED.
        # ``spool`` opens this process's spool (called again in a forked child)
        self._sender = sender
        self._open_spool = spool
        self._max_queue = max_queue_size
        self._max_batch = max_export_batch_size
        self._interval = export_interval
        self._shutdown_timeout = shutdown_timeout
        self.counters = counters or Counters()
        self._closed = False
        self._start()

    def _start(self) -> None:
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._wake = threading.Event()
        self._cond = threading.Condition()
        self._requested = 0  # flush generations asked for
        self._done = 0  # flush generations completed
        self._stopping = False
        self._pid = os.getpid()
        self._spool: Spool | None = None
        if self._open_spool is not None:
            try:
                self._spool = self._open_spool()
            except Exception as exc:  # an unwritable spool dir: export as without one
                log_once("spool_open", "tenantscope: cannot open the spool (%s); none is used", exc)
        self._down_until = 0.0
        self._down_for = 0.0
        self._in_flight: set[str] = set()  # spooled batches handed to the poster
        self._poster = (
            Poster(self._sender, self._went_down, self._wake.set)
            if self._spool is not None
            else None
        )
        self._thread = threading.Thread(target=self._run, name="tenantscope-export", daemon=True)
        self._thread.start()

    # -- the app's side: must be cheap and never raise -------------------------------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if self._closed or not span.context.trace_flags.sampled:
            return
        if self._pid != os.getpid():  # forked without the at-fork hook (e.g. os.fork in C)
            self.after_fork()
        queue = self._queue
        if len(queue) >= self._max_queue:
            try:
                queue.popleft()
            except IndexError:
                pass
            else:
                self._count_drop()
        queue.append(span)
        self.counters.queued += 1
        if len(queue) >= self._max_batch:
            self._wake.set()

    def _count_drop(self) -> None:
        with self.counters.lock:
            self.counters.dropped_queue_full += 1
        log_once(
            "queue_full",
            "tenantscope: the span queue is full (max_queue_size=%d); the oldest spans are "
            "dropped and counted (tenantscope.sdk.stats())",
            self._max_queue,
        )

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if self._closed:
            return False
        deadline = time.monotonic() + max(0, timeout_millis) / 1000
        with self._cond:
            self._requested += 1
            gen = self._requested
            failures = self.counters.failed_exports
            spooled = self.counters.spooled
        self._wake.set()
        with self._cond:
            while self._done < gen:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(remaining)
        poster = self._poster
        if poster is not None:  # and what the round handed to the POST thread went out
            while not poster.idle() or self._in_flight:
                if time.monotonic() >= deadline or not self._thread.is_alive():
                    return False
                self._wake.set()
                time.sleep(0.005)
        # True: what was queued before the call went out (not to the spool), nothing failed
        # meanwhile, and no batch waits in the spool
        return (
            self.counters.failed_exports == failures
            and self.counters.spooled == spooled
            and not (self._spool is not None and len(self._spool))
        )

    def shutdown(self) -> None:
        self.shutdown_within(self._shutdown_timeout)

    def shutdown_within(self, timeout: float) -> None:
        """Export what is queued, waiting at most ``timeout`` seconds, then stop."""
        if self._closed:
            return
        began = time.monotonic()
        self._stopping = True
        self._wake.set()
        self._thread.join(max(0.0, timeout))
        poster, spool = self._poster, self._spool
        if poster is not None and spool is not None and not self._thread.is_alive():
            # what the POST thread still holds: sent within the time left, or spooled
            poster.join(max(0.0, timeout - (time.monotonic() - began)))
        self._closed = True
        self._sender.stop()  # a last export still retrying gives up now (to the spool)
        self._thread.join(0.5)
        if poster is not None and spool is not None and not self._thread.is_alive():
            poster.join(1.0)
            poster.skip_waiting()
            try:
                self._apply(spool, poster)
            except Exception as exc:
                internal_error("spool", exc)
        self._sender.close()
        if spool is not None and not self._thread.is_alive():
            spool.close()  # what is left there is the next process's to send

    def after_fork(self) -> None:
        """In a forked child: a fresh queue and worker (the parent exports its own spans)."""
        if self._closed:
            return
        self._sender.reset_after_fork()
        if self._spool is not None:
            self._spool.forget_after_fork()  # the parent's directory stays the parent's
        self._start()

    # -- the worker ----------------------------------------------------------------------------
    def _run(self) -> None:
        # instrumentations (e.g. of ``requests``) must not trace our own export requests
        otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            with self._cond:
                gen = self._requested
            stopping = self._stopping
            self._drain(everything=stopping or gen > self._done)
            with self._cond:
                self._done = max(self._done, gen)
                self._cond.notify_all()
            if stopping:
                return

    def _drain(self, *, everything: bool) -> None:
        """Send what was queued when the round began, in batches (spans that keep arriving
        wait for the next round, so a flush always ends). On a periodic wake a failed batch
        ends the round (the collector is down: wait for the next one); a flush or the
        shutdown goes on to the end."""
        queue = self._queue
        spool, poster = self._spool, self._poster
        if spool is not None and poster is not None:
            self._apply(spool, poster)
        left = len(queue)
        while left > 0 and queue:
            batch: list[ReadableSpan] = []
            while queue and left > 0 and len(batch) < self._max_batch:
                batch.append(queue.popleft())
                left -= 1
            if not self._send(batch) and not everything:
                break
        if spool is not None and poster is not None:
            try:
                self._apply(spool, poster)
                self._replay(spool, poster, _REPLAY_BUSY if queue else _REPLAY_IDLE)
                spool.sync()
                spool.adopt_now_and_then()
            except Exception as exc:  # the spool must never stop the export
                internal_error("spool", exc)

    # -- with a spool ------------------------------------------------------------------------
    def _down(self) -> bool:
        return time.monotonic() < self._down_until

    def _went_down(self) -> None:
        self._down_for = min(_DOWN_MAX_S, max(_DOWN_MIN_S, self._down_for * 2))
        self._down_until = time.monotonic() + self._down_for

    def _came_up(self) -> None:
        self._down_for = 0.0
        self._down_until = 0.0

    def _spool_send(self, spool: Spool, batch: list[ReadableSpan]) -> bool:
        """Hand a live batch to the POST thread, or keep it in the spool while the
        collector is down or that thread has its hands full. False only for a batch lost
        (unencodable, or the spool full)."""
        body = self._sender.encode(batch)
        if body is None:
            self._count_lost(len(batch))
            return False
        poster = self._poster
        assert poster is not None
        if not self._down() and poster.has_room():
            poster.submit(Job(body, len(batch), None))
            return True
        return spool.write(body, len(batch))

    def _count_lost(self, spans: int) -> None:
        with self.counters.lock:
            self.counters.failed_exports += 1
            self.counters.dropped_export_failed += spans

    def _apply(self, spool: Spool, poster: Poster) -> None:
        """What the POST thread did: count it, mark spooled batches delivered, and spool
        live batches it could not deliver."""
        for done in poster.take():
            job, result = done.job, done.result
            if job.record is not None:
                self._in_flight.discard(job.record.path.name)
            if result == OK:
                self._came_up()
                if job.record is not None:
                    spool.done(job.record)
                with self.counters.lock:
                    self.counters.exported += job.spans
            elif result == REJECTED:  # REFUSED waits in the spool for a key
                if job.record is not None:
                    spool.done(job.record, delivered=False)
                self._count_lost(job.spans)
            elif job.record is None:  # failed, refused or skipped: keep it
                spool.write(job.body, job.spans)

    def _replay(self, spool: Spool, poster: Poster, limit: int) -> None:
        """Hand up to ``limit`` spooled batches to the POST thread, oldest first, unless the
        collector is down (the first one sent after a pause is the probe that finds it up
        again)."""
        if not len(spool) or self._down() or self._closed:
            return
        handed = 0
        for record in spool.oldest():
            if handed >= limit or not poster.has_room():
                return
            if record.path.name in self._in_flight:
                continue  # handed over already: not read again
            body = spool.read(record)
            if body is None:
                continue
            self._in_flight.add(record.path.name)
            poster.submit(Job(body, record.spans, record))
            handed += 1

    def _send(self, batch: list[ReadableSpan]) -> bool:
        if self._spool is not None:
            return self._spool_send(self._spool, batch)
        try:
            sent = bool(self._sender.send(batch))
        except Exception as exc:  # the sender promises not to raise; belt and braces
            log_once("send", "tenantscope: span export failed (%s)", exc)
            sent = False
        with self.counters.lock:
            if sent:
                self.counters.exported += len(batch)
            else:
                self.counters.failed_exports += 1
                self.counters.dropped_export_failed += len(batch)
        return sent
