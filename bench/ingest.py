"""Ingest benchmark: OTLP/HTTP protobuf batches into a real tenantscope server.

    python bench/ingest.py                      # starts `tenantscope serve` on a free port
    python bench/ingest.py --url http://127.0.0.1:4318 --batches 400 --senders 8

Bodies are the demo generator's ExportTraceServiceRequests (MeetingMind traffic, about
--batch-spans spans each), all built before the clock starts. --senders threads POST them
concurrently until the batches run out or --seconds pass. A 200 means the spans are durable
(the server answers only after its group commit), so spans/s counts accepted spans of
answered requests; spans the server reports in partial_success are subtracted.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import os
import statistics
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tenantscope.demo import demo_batches, demo_tenants
from tenantscope.testing.server import make_key, start_serve, stop_serve

GOAL_SPANS_PER_S = 30_000.0
# the key every request sends (an admin key: ingest, and /metrics for the stored count)
AUTH: dict[str, str] = {}


def _bodies(count: int, batch_spans: int, seed: int, compress: bool) -> list[tuple[bytes, int]]:
    """``count`` bodies (bytes, span count), generated before any timing."""
    tenants = demo_tenants(n_extra=200, seed=seed)
    traces = count * batch_spans // 2 + batch_spans  # ~2.8 spans a trace: enough, with slack
    gen = demo_batches(
        tenants, days=1, traces=traces, seed=seed, now=datetime.now(timezone.utc),
        batch_spans=batch_spans,
    )  # fmt: skip
    out = []
    for body in itertools.islice(gen, count):
        spans = sum(
            len(ss.spans)
            for rs in ExportTraceServiceRequest.FromString(body).resource_spans
            for ss in rs.scope_spans
        )
        out.append((gzip.compress(body, 1) if compress else body, spans))
    return out


class _Results:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies_ms: list[float] = []
        self.durable = 0
        self.rejected = 0
        self.failures: dict[str, int] = {}

    def fail(self, what: str) -> None:
        with self.lock:
            self.failures[what] = self.failures.get(what, 0) + 1


def _sender(
    url: str,
    bodies: list[tuple[bytes, int]],
    order: itertools.count[int],
    deadline: float,
    compress: bool,
    results: _Results,
) -> None:
    headers = {"content-type": "application/x-protobuf", **AUTH}
    if compress:
        headers["content-encoding"] = "gzip"
    with httpx.Client(base_url=url, timeout=120) as client:
        while time.perf_counter() < deadline:
            i = next(order)  # atomic under the GIL: each body is sent once
            if i >= len(bodies):
                return
            body, spans = bodies[i]
            began = time.perf_counter()
            try:
                resp = client.post("/v1/traces", content=body, headers=headers)
            except httpx.HTTPError as exc:
                results.fail(type(exc).__name__)
                continue
            elapsed = (time.perf_counter() - began) * 1000.0
            if resp.status_code != 200:
                results.fail(f"HTTP {resp.status_code}")
                continue
            rejected = ExportTraceServiceResponse.FromString(
                resp.content
            ).partial_success.rejected_spans
            with results.lock:
                results.latencies_ms.append(elapsed)
                results.durable += spans - rejected
                results.rejected += rejected


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _records_total(url: str) -> int | None:
    try:
        text = httpx.get(f"{url}/metrics", timeout=10, headers=AUTH).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith("tenantscope_ingest_records_total "):
            return int(float(line.split()[1]))
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("TENANTSCOPE_API_KEY"),
        help="an admin key of --url (default: $TENANTSCOPE_API_KEY)",
    )
    parser.add_argument("--data-dir", type=Path, help="for the started server (default: temp)")
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--batches", type=int, default=300, help="timed requests at most")
    parser.add_argument("--seconds", type=float, default=60.0, help="stop sending after this")
    parser.add_argument("--batch-spans", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=4, help="untimed requests first")
    parser.add_argument("--gzip", action="store_true", help="gzip the bodies (level 1)")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    args = parser.parse_args(argv)

    began = time.perf_counter()
    bodies = _bodies(args.warmup + args.batches, args.batch_spans, args.seed, args.gzip)
    warm, timed = bodies[: args.warmup], bodies[args.warmup :]
    total_spans = sum(n for _, n in timed)
    size = sum(len(b) for b, _ in timed) / max(1, len(timed)) / 1024
    print(f"pre-generated {len(timed)} bodies, {total_spans:,} spans, {size:,.0f} KiB each"
          f" ({time.perf_counter() - began:.1f} s)")  # fmt: skip

    proc = None
    tmp = None
    url = args.url
    if url is None:
        if args.data_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="tenantscope-bench-")
        data_dir = args.data_dir or Path(tmp.name if tmp else ".")
        AUTH["authorization"] = f"Bearer {make_key(data_dir, 'bench/ingest.py')}"
        proc, url = start_serve(data_dir, {"TENANTSCOPE_LOG_LEVEL": "warning"})
        print(f"started tenantscope serve at {url}, data dir {data_dir}")
    elif args.api_key:
        AUTH["authorization"] = f"Bearer {args.api_key}"
    try:
        warm_results = _Results()
        _sender(url, warm, itertools.count(), float("inf"), args.gzip, warm_results)
        if warm_results.failures:
            print(f"warm-up failed: {warm_results.failures}")
            return 1
        before = _records_total(url)

        results = _Results()
        order: itertools.count[int] = itertools.count()
        start = time.perf_counter()
        senders_cpu = time.process_time()
        deadline = start + args.seconds
        threads = [
            threading.Thread(target=_sender, args=(url, timed, order, deadline, args.gzip, results))
            for _ in range(args.senders)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        senders_cpu = time.process_time() - senders_cpu
        after = _records_total(url)
    finally:
        if proc is not None:
            stop_serve(proc)
        if tmp is not None:
            tmp.cleanup()

    lat = results.latencies_ms
    rate = results.durable / wall if wall > 0 else 0.0
    print(f"\n{len(lat)} requests from {args.senders} senders in {wall:.2f} s")
    print(f"durable spans: {results.durable:,}  rejected: {results.rejected:,}"
          f"  failed requests: {results.failures or 0}")  # fmt: skip
    if lat:
        print(f"request latency ms: p50 {statistics.median(lat):.0f}  p90 {_pct(lat, 0.9):.0f}"
              f"  p99 {_pct(lat, 0.99):.0f}  max {max(lat):.0f}")  # fmt: skip
    print(f"the senders' own CPU: {senders_cpu:.2f} s ({senders_cpu / wall * 100:.0f}% of a core),"
          " on the same cores as the server")  # fmt: skip
    if before is not None and after is not None:
        stored = after - before
        print(f"server's tenantscope_ingest_records_total grew by {stored:,}")
    ok = rate >= GOAL_SPANS_PER_S
    print(f"\nthroughput: {rate:,.0f} spans/s durable, {len(lat) / wall:.1f} requests/s"
          f"  (goal >= {GOAL_SPANS_PER_S:,.0f} spans/s {'ok' if ok else 'MISSED'})")  # fmt: skip
    return 0 if ok and not results.failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
