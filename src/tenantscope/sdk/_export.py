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
"""

from __future__ import annotations

import collections
import gzip
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from tenantscope import __version__
from tenantscope.sdk._encode import Unsupported, encode_request
from tenantscope.sdk._stats import Counters, internal_error, log_once

if TYPE_CHECKING:
    import requests

_RETRYABLE = frozenset({408, 429, 502, 503, 504})
_MAX_BACKOFF = 8.0


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
        if self._stop.is_set():
            return False
        try:
            body = _encode(spans)
        except Exception as exc:  # a span the encoder cannot handle: drop the batch
            log_once("encode", "tenantscope: could not encode spans (%s); batch dropped", exc)
            return False
        if self._gzip:
            body = gzip.compress(body, compresslevel=6)
        deadline = time.monotonic() + self.timeout
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                status, retry_after, detail = self._post(body, deadline)
            except Exception as exc:  # connection refused, timeout, DNS...
                status, detail = None, f"{type(exc).__name__}: {exc}"
            if status is not None and 200 <= status < 300:
                return True
            if status is not None and status not in _RETRYABLE:
                log_once(
                    f"http:{status}",
                    "tenantscope: the collector at %s rejected spans with HTTP %s (%s); "
                    "they are dropped and counted (tenantscope.sdk.stats())",
                    self.url,
                    status,
                    detail,
                )
                return False
            backoff = min(_MAX_BACKOFF, 0.5 * 2**attempt) * random.uniform(0.8, 1.2)
            if retry_after is not None:
                backoff = min(retry_after, _MAX_BACKOFF)
            attempt += 1
            if time.monotonic() + backoff >= deadline or self._stop.is_set():
                log_once(
                    "unreachable",
                    "tenantscope: cannot export spans to %s (%s); the app is not affected, "
                    "spans are retried then dropped and counted (tenantscope.sdk.stats())",
                    self.url,
                    detail if status is None else f"HTTP {status}",
                )
                return False
            if self._stop.wait(backoff):
                return False

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
    ) -> None:
        # ``sender``: anything with send(spans) -> bool, stop(), close(), reset_after_fork()
        self._sender = sender
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
        self._wake.set()
        with self._cond:
            while self._done < gen:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(remaining)
        # True: what was queued before the call went out and nothing failed meanwhile
        return self.counters.failed_exports == failures

    def shutdown(self) -> None:
        self.shutdown_within(self._shutdown_timeout)

    def shutdown_within(self, timeout: float) -> None:
        """Export what is queued, waiting at most ``timeout`` seconds, then stop."""
        if self._closed:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join(max(0.0, timeout))
        self._closed = True
        self._sender.stop()  # a last export still retrying gives up now
        self._thread.join(0.5)
        self._sender.close()

    def after_fork(self) -> None:
        """In a forked child: a fresh queue and worker (the parent exports its own spans)."""
        if self._closed:
            return
        self._sender.reset_after_fork()
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
        left = len(queue)
        while left > 0 and queue:
            batch: list[ReadableSpan] = []
            while queue and left > 0 and len(batch) < self._max_batch:
                batch.append(queue.popleft())
                left -= 1
            if not self._send(batch) and not everything:
                break

    def _send(self, batch: list[ReadableSpan]) -> bool:
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
