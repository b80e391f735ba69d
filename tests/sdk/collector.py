"""A real OTLP/HTTP endpoint for export tests whose answers the test scripts."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

# (request number from 0) -> (status, headers, delay seconds)
Script = Callable[[int], tuple[int, dict[str, str], float]]


@dataclass
class Received:
    headers: dict[str, str]
    request: ExportTraceServiceRequest

    def spans(self) -> list[tuple[str, dict[str, object]]]:
        out = []
        for rs in self.request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    attrs = {a.key: _value(a.value) for a in span.attributes}
                    out.append((span.name, attrs))
        return out


def _value(v: object) -> object:
    kind = v.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(v, kind) if kind else None


@dataclass
class Collector:
    url: str
    received: list[Received] = field(default_factory=list)
    attempts: int = 0

    def span_names(self) -> list[str]:
        return [name for r in self.received for name, _ in r.spans()]


@contextmanager
def collector(script: Script | None = None) -> Iterator[Collector]:
    state: Collector

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            n = state.attempts
            state.attempts += 1
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, headers, delay = script(n) if script else (200, {}, 0.0)
            if delay:
                time.sleep(delay)
            if status == 200:
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                state.received.append(Received(dict(self.headers), request))
            try:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the client gave up waiting

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state = Collector(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
