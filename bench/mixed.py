"""Mixed load: steady OTLP ingest at a set rate while readers use the API and dashboard.

    python bench/mixed.py                                  # 3,000 spans/s for 180 s, empty store
    python bench/mixed.py --rate 20000 --seconds 120
    python bench/mixed.py --rows 10000000                  # over a copy of bench/query.py's store

Starts ``tenantscope serve`` on a free port (a temporary data dir; with ``--rows`` a
copy of the cached store ``bench/query.py --rows N`` made, so reads run over that much
data), then for ``--seconds``: sender threads post (with an ingest key, as instrumented
apps do) OTLP protobuf bodies of the demo generator paced to ``--rate`` spans/s (a pool
of bodies is pre-generated; each send gives its spans fresh trace and response ids, so
nothing is a duplicate, and moves each trace to end now), while ``--readers`` threads
loop (back to back, or ``--think`` seconds apart) over the reads a user makes (tenants
list over 7 days, one tenant's usage, the traces list, a trace by id, the overview and
tenants pages). Every ``--interval`` seconds it prints the ingest rate reached, read
latency p50/p95/p99 (all reads, and the tenants list alone) and the server's resident
memory (VmRSS, sampled every second, max of the interval). At the end: the whole run's
figures against the goals (tenants list p95 <= 100 ms, RSS <= 500 MB at every sample),
and how long each read took in the app and waited there for answered records to reach
the store (the server's ``Server-Timing`` header); exit status 1 when one
is missed. Readers use an admin key, so they wait for spans answered more than
``TENANTSCOPE_READ_LAG_MS`` before them; ``--strict`` makes every read wait for every
answered span, as ``Tenantscope-Consistency: strict`` does. Tests never assert on
timings; this prints them.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _serve import MissingData

from tenantscope.demo import demo_batches, demo_tenants
from tenantscope.testing.server import make_key, start_serve, stop_serve

GOAL_TENANTS_P95_MS = 100.0
GOAL_RSS_MB = 500.0


def _pool(count: int, batch_spans: int, seed: int) -> list[ExportTraceServiceRequest]:
    tenants = demo_tenants(n_extra=200, seed=seed)
    gen = demo_batches(
        tenants, days=1, traces=count * batch_spans // 2 + batch_spans, seed=seed,
        now=datetime.now(timezone.utc), batch_spans=batch_spans,
    )  # fmt: skip
    return [ExportTraceServiceRequest.FromString(b) for b in itertools.islice(gen, count)]


def _fresh(request: ExportTraceServiceRequest, n: int) -> tuple[bytes, int]:
    """The request with its trace and response ids made new (n-th send) and each trace
    moved to end now, as live traffic does (a body of the generator spans hours of demo
    time; spans dated in the future would be read from records, not rollups). A re-sent
    response id would be a copy of a stored call (ingest/duplicates.py)."""
    out = ExportTraceServiceRequest()
    out.CopyFrom(request)
    salt = n.to_bytes(8, "big")
    every = [span for rs in out.resource_spans for ss in rs.scope_spans for span in ss.spans]
    ends: dict[bytes, int] = {}
    for span in every:
        ends[span.trace_id] = max(ends.get(span.trace_id, 0), span.end_time_unix_nano)
    now = time.time_ns()
    for span in every:
        shift = now - ends[span.trace_id]
        span.start_time_unix_nano += shift
        span.end_time_unix_nano += shift
        span.trace_id = salt + span.trace_id[8:]
        for attr in span.attributes:
            if attr.key == "gen_ai.response.id":
                attr.value.string_value += f"-{n}"
    return out.SerializeToString(), len(every)


class _Window:
    """What one interval saw."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reads: dict[str, list[float]] = {}
        self.waits: dict[str, list[float]] = {}  # of which waiting for the store (ms)
        self.served: dict[str, list[float]] = {}  # of which in the app (ms)
        self.spans = 0
        self.failures = 0
        self.rss: list[float] = []

    def read(self, name: str, ms: float, resp: httpx.Response) -> None:
        timing = _server_timing(resp)
        with self.lock:
            self.reads.setdefault(name, []).append(ms)
            if "store-wait" in timing:
                self.waits.setdefault(name, []).append(timing["store-wait"])
                self.served.setdefault(name, []).append(timing["total"])


def _server_timing(resp: httpx.Response) -> dict[str, float]:
    """The server's ``Server-Timing`` figures (server/headers.py): store-wait and total."""
    out = {}
    for part in resp.headers.get("server-timing", "").split(","):
        name, _, dur = part.strip().partition(";dur=")
        if dur:
            out[name] = float(dur)
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _cpu_s(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and its child processes (the decode workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # fields[1]: the parent
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=3000.0, help="spans/s to send")
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="seconds each reader pauses between reads (0: back to back, a stress test)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="every read waits for every answered span (TENANTSCOPE_READ_LAG_MS=0)",
    )
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--batch-spans", type=int, default=500)
    parser.add_argument("--pool", type=int, default=120, help="bodies pre-generated")
    parser.add_argument("--rows", type=int, default=0, help="copy bench/query.py's store first")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    args = parser.parse_args()

    began = time.perf_counter()
    pool = _pool(args.pool, args.batch_spans, args.seed)
    print(f"pre-generated {len(pool)} bodies of ~{args.batch_spans} spans"
          f" ({time.perf_counter() - began:.1f} s)")  # fmt: skip
    tmp = tempfile.TemporaryDirectory(prefix="tenantscope-mixed-")
    data = Path(tmp.name)
    if args.rows:
        cached = Path(tempfile.gettempdir()) / "tenantscope-bench" / f"query-{args.rows}.duckdb"
        if not cached.exists():
            raise MissingData(
                f"{cached} is missing: run `python bench/query.py --rows {args.rows}`"
            )
        shutil.copyfile(cached, data / "events.duckdb")  # a copy: this run writes to it
        shutil.copyfile(cached.with_suffix(".config.sqlite"), data / "config.db")
    # senders use an ingest key, as instrumented apps do; readers an admin key, as people
    ingest = {"authorization": f"Bearer {make_key(data, 'bench/mixed.py', role='ingest')}"}
    auth = {"authorization": f"Bearer {make_key(data, 'bench/mixed.py')}"}
    env = {"TENANTSCOPE_LOG_LEVEL": "warning"}
    if args.strict:
        env["TENANTSCOPE_READ_LAG_MS"] = "0"
    proc, url = start_serve(data, env)
    print(f"started tenantscope serve at {url} (pid {proc.pid}), data dir {data}")

    stop = threading.Event()
    window = [_Window()]
    all_reads: dict[str, list[float]] = {}
    all_waits: dict[str, list[float]] = {}
    all_served: dict[str, list[float]] = {}
    all_rss: list[float] = []
    sent = itertools.count()
    per_sender = args.rate / args.senders

    def sender() -> None:
        headers = {"content-type": "application/x-protobuf", **ingest}
        with httpx.Client(base_url=url, timeout=120) as client:
            start, done = time.perf_counter(), 0
            while not stop.is_set():
                n = next(sent)
                body, spans = _fresh(pool[n % len(pool)], n + 1)
                wait = start + done / per_sender - time.perf_counter()
                if wait > 0 and stop.wait(wait):
                    return
                try:
                    ok = client.post("/v1/traces", content=body, headers=headers).status_code
                except httpx.HTTPError:
                    ok = 0
                w = window[0]
                with w.lock:
                    if ok == 200:
                        w.spans += spans
                    else:
                        w.failures += 1
                done += spans

    def reader(r: int) -> None:
        week = {"from": (datetime.now(timezone.utc) - timedelta(days=7)).isoformat()}
        with httpx.Client(base_url=url, timeout=120, headers=auth) as client:
            tenants = client.get("/api/tenants", params={**week, "limit": 20}).json()["items"]
            tenant = tenants[len(tenants) // 2]["tenant_id"] if tenants else "apex-legal"
            reads = [
                ("tenants list", "/api/tenants", week),
                ("tenant usage", f"/api/tenants/{tenant}/usage", {}),
                ("traces list", "/api/traces", week),
                ("overview page", "/", {}),
                ("tenants page", "/tenants", {}),
            ]
            for i in itertools.count(r):
                if stop.is_set() or (args.think and stop.wait(args.think)):
                    return
                name, path, params = reads[i % len(reads)]
                t0 = time.perf_counter()
                resp = client.get(path, params=params)
                ms = (time.perf_counter() - t0) * 1000
                if resp.status_code == 200:
                    window[0].read(name, ms, resp)
                    if name == "traces list" and resp.json()["items"]:
                        trace = resp.json()["items"][0]["trace_id"]
                        t0 = time.perf_counter()
                        got = client.get(f"/api/traces/{trace}")
                        got.raise_for_status()
                        window[0].read("trace by id", (time.perf_counter() - t0) * 1000, got)

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(args.senders)]
    threads += [
        threading.Thread(target=reader, args=(r,), daemon=True) for r in range(args.readers)
    ]
    print(f"\n{'t s':>5} {'spans/s':>8} {'reads':>6} {'p50':>6} {'p95':>6} {'p99':>6}"
          f" {'tenants p95':>12} {'max RSS MB':>11}")  # fmt: skip
    missed = False
    server_cpu0, bench_cpu0 = _cpu_s(proc.pid), time.process_time()
    try:
        for t in threads:
            t.start()
        t0 = time.perf_counter()
        next_print = t0 + args.interval
        while time.perf_counter() - t0 < args.seconds:
            time.sleep(1.0)
            rss = _rss_mb(proc.pid)
            if rss is not None:
                window[0].rss.append(rss)
            now = time.perf_counter()
            if now >= next_print or now - t0 >= args.seconds:
                w, window[0] = window[0], _Window()
                reads = [ms for v in w.reads.values() for ms in v]
                tl = w.reads.get("tenants list", [])
                for name, v in w.reads.items():
                    all_reads.setdefault(name, []).extend(v)
                for name, v in w.waits.items():
                    all_waits.setdefault(name, []).extend(v)
                for name, v in w.served.items():
                    all_served.setdefault(name, []).extend(v)
                all_rss.extend(w.rss)
                print(f"{now - t0:5.0f} {w.spans / args.interval:8,.0f} {len(reads):6d}"
                      f" {_pct(reads, 0.5):6.0f} {_pct(reads, 0.95):6.0f} {_pct(reads, 0.99):6.0f}"
                      f" {_pct(tl, 0.95):12.0f} {max(w.rss, default=0):11.0f}"
                      + (f"  ({w.failures} failed sends)" if w.failures else ""))  # fmt: skip
                next_print += args.interval
    finally:
        stop.set()
        server_cpu = _cpu_s(proc.pid) - server_cpu0
        bench_cpu = time.process_time() - bench_cpu0
        elapsed = time.perf_counter() - t0
        for t in threads:
            t.join(30)
        stop_serve(proc)
        tmp.cleanup()

    print("\nwhole run, read latency ms as the client saw it (p50 / p95 / p99, count);"
          " in the app (p50 / p95), of which waiting for the store (p50 / p95):")  # fmt: skip
    for name, v in sorted(all_reads.items()):
        waits, served = all_waits.get(name, []), all_served.get(name, [])
        print(f"  {name:14s} {statistics.median(v):7.1f} {_pct(v, 0.95):7.1f}"
              f" {_pct(v, 0.99):7.1f}  ({len(v)})"
              f"   app {_pct(served, 0.5):6.1f} {_pct(served, 0.95):6.1f}"
              f"   wait {_pct(waits, 0.5):6.1f} {_pct(waits, 0.95):6.1f}")  # fmt: skip
    cores = os.cpu_count() or 1
    print(f"CPU over the run: server with its decode workers {server_cpu:.0f} s, this bench"
          f" {bench_cpu:.0f} s, of {elapsed * cores:.0f} s ({cores} cores)")  # fmt: skip
    tl95 = _pct(all_reads.get("tenants list", []), 0.95)
    peak = max(all_rss, default=0.0)
    ok_reads, ok_rss = tl95 <= GOAL_TENANTS_P95_MS, peak <= GOAL_RSS_MB
    missed = not (ok_reads and ok_rss)
    print(f"tenants list p95 {tl95:.0f} ms (goal <= {GOAL_TENANTS_P95_MS:.0f} ms"
          f" {'ok' if ok_reads else 'MISSED'}); server RSS max {peak:.0f} MB"
          f" (goal <= {GOAL_RSS_MB:.0f} MB {'ok' if ok_rss else 'MISSED'})")  # fmt: skip
    return 1 if missed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
