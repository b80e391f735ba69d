"""What a collector outage costs an instrumented app: nothing lost, nothing slowed.

    python bench/sdk_outage.py                     # 20,000 calls, ~700 a second
    python bench/sdk_outage.py --calls 5000 --rate 2000

Three runs of the same app, each ``--calls`` LLM calls paced at ``--rate`` a second (the
SDK's own span and usage record per call, the app's side of an instrumented call):

1. collector up: a real ``tenantscope serve`` (the baseline);
2. collector down (connection refused) for the whole run, then ``tenantscope serve``
   starts on that port;
3. a black-hole collector (accepts connections, never answers) for the whole run, then
   the real server takes its port.

For each it prints, every second while the app runs and until the spool is empty: spans
spooled and delivered, the spool's size on disk and the process's RSS; then the app's
per-call time (p50, p99) against the baseline, and the server's count of the tenant's
requests (each call must count exactly once). Tests never assert on timings; this prints.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

import tenantscope
from tenantscope.testing.server import free_port, make_key, wait_ready


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def _serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tenantscope.cli", "serve", "--port", str(port),
         "--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_ready(f"http://127.0.0.1:{port}", proc, 60)
    return proc


class BlackHole:
    """Accepts connections on ``port`` and never answers."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(128)
        self.held: list[socket.socket] = []
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.open:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.open = False
        self.sock.close()
        for conn in self.held:
            conn.close()


def _app(calls: int, rate: float, tenant: str) -> list[float]:
    times = []
    began = time.perf_counter()
    with tenantscope.context(tenant_id=tenant):
        for i in range(calls):
            t0 = time.perf_counter()
            with tenantscope.span("chat") as s:
                s.record_usage(model="gpt-4o", input_tokens=120, output_tokens=30)
            times.append(time.perf_counter() - t0)
            ahead = (i + 1) / rate - (time.perf_counter() - began)
            if ahead > 0:
                time.sleep(ahead)
    return times


def _progress(spool_dir: Path, until: float, stop: threading.Event) -> None:
    began = time.monotonic()
    heads = ("t s", "spooled", "delivered", "exported", "spool MB", "RSS MB")
    print("  " + " ".join(f"{h:>{w}}" for h, w in zip(heads, (5, 9, 10, 9, 9, 7), strict=True)))
    while not stop.is_set() and time.monotonic() < until:
        s = tenantscope.stats()
        print(f"  {time.monotonic() - began:5.0f} {s.spooled:9,} {s.spool_delivered:10,} "
              f"{s.exported:9,} {_dir_mb(spool_dir):9.1f} {_rss_mb():7.0f}")  # fmt: skip
        stop.wait(1.0)


def run(name: str, args: argparse.Namespace, work: Path, outage: str) -> list[float]:
    print(f"\n== {name}")
    data_dir = work / name.split()[0] / "data"
    spool_dir = work / name.split()[0] / "spool"
    key = make_key(data_dir, "bench", "ingest")
    port = free_port()
    server = hole = None
    if outage == "none":
        server = _serve(data_dir, port)
    elif outage == "black-hole":
        hole = BlackHole(port)
    tenant = f"bench-{outage}"
    tenantscope.init(endpoint=f"http://127.0.0.1:{port}", api_key=key, service_name=name,
                     spool_dir=str(spool_dir))  # fmt: skip
    stop = threading.Event()
    watcher = threading.Thread(target=_progress, args=(spool_dir, time.monotonic() + 900, stop))
    watcher.start()
    try:
        times = _app(args.calls, args.rate, tenant)
        if server is None:  # the collector comes back
            if hole is not None:
                hole.close()
            server = _serve(data_dir, port)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            s = tenantscope.stats()
            if s.exported + s.dropped >= args.calls:
                break
            time.sleep(0.2)
        tenantscope.shutdown(5)
        stop.set()
        watcher.join()
        s = tenantscope.stats()
        usage = httpx.get(
            f"http://127.0.0.1:{port}/api/tenants/{tenant}/usage",
            params={"from": "0"},
            headers={"Authorization": f"Bearer {make_key(data_dir, 'read', 'reader')}",
                     "Tenantscope-Consistency": "strict"},
            timeout=30,
        ).json()  # fmt: skip
        print(f"  delivered {s.exported:,} of {args.calls:,}"
              f" (from the spool {s.spool_delivered:,}), dropped {s.dropped:,};"
              f" the server counts {usage['request_count']:,} requests")  # fmt: skip
        return times
    finally:
        stop.set()
        if server is not None:
            server.terminate()
            server.wait(30)
        if hole is not None:
            hole.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=700.0, help="calls a second")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tenantscope-outage-"))
    base = run("up (baseline)", args, work, "none")
    results = {
        "collector refused": run("refused then up", args, work, "refused"),
        "black-hole collector": run("black-hole then up", args, work, "black-hole"),
    }

    def ms(times: list[float], q: float) -> float:
        return statistics.quantiles(times, n=100)[int(q) - 1] * 1000

    print(f"\napp time per call (span + usage record): collector up p50 {ms(base, 50):.3f} ms,"
          f" p99 {ms(base, 99):.3f} ms")  # fmt: skip
    for name, times in results.items():
        print(f"  {name:22s} p50 {ms(times, 50):.3f} ms ({(ms(times, 50) - ms(base, 50)):+.3f}),"
              f" p99 {ms(times, 99):.3f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
