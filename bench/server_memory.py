"""Resident memory of a real `tenantscope serve` answering the benchmark queries over the
query benchmark's data (10M spans by default).

    python bench/query.py                 # once, to generate the cached data
    python bench/server_memory.py         # starts a server on that data, queries over HTTP

Prints the server's VmRSS / VmHWM after the tenants list (7 days), tenant usage (24 h),
the 30-day hourly series and a trace lookup have each run 20 times, and the HTTP medians.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    base = Path(tempfile.gettempdir()) / "tenantscope-bench"
    db = base / f"query-{args.rows}.duckdb"
    cfg = base / f"query-{args.rows}.config.sqlite"
    if not db.exists():
        print(f"{db} is missing: run `python bench/query.py --rows {args.rows}` first")
        return 2
    data = Path(tempfile.mkdtemp(prefix="tenantscope-mem-"))
    (data / "events.duckdb").symlink_to(db)
    (data / "config.db").symlink_to(cfg)
    port = _free_port()
    env = {**os.environ, "TENANTSCOPE_DATA_DIR": str(data), "TENANTSCOPE_LOG_LEVEL": "warning"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tenantscope.cli", "serve", "--port", str(port)], env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                print("the server did not start")
                return 1
            time.sleep(0.2)
        meta = json.loads(Path(str(db) + ".meta.json").read_text())
        t_to = int(datetime.fromisoformat(meta["end"]).timestamp())
        day, week, month = 86400, 7 * 86400, 30 * 86400
        with httpx.Client(base_url=url, timeout=60) as client:
            last = client.get(
                "/api/traces", params={"from": t_to - 3600, "to": t_to, "limit": 1}
            ).json()["items"]
            queries = {
                "tenants list, 7 days": ("/api/tenants", {"from": t_to - week, "to": t_to}),
                "tenant usage, 24 h": (
                    "/api/tenants/tenant-0030/usage",
                    {"from": t_to - day, "to": t_to},
                ),
                "hourly cost series, 30 days": (
                    "/api/timeseries",
                    {"from": t_to - month, "to": t_to, "interval": "hour"},
                ),
            }
            if last:
                queries["trace lookup"] = (f"/api/traces/{last[0]['trace_id']}", {})
            print(f"{'HTTP query':40s} {'median ms':>10s}")
            for name, (path, params) in queries.items():
                times = []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    resp = client.get(path, params=params)
                    times.append((time.perf_counter() - t0) * 1000)
                    resp.raise_for_status()
                print(f"{name:40s} {statistics.median(times):10.1f}")
        rss, hwm = _status_mb(proc.pid, "VmRSS"), _status_mb(proc.pid, "VmHWM")
        verdict = "ok" if hwm <= 500 else "MISSED"
        print(
            f"server resident memory: VmRSS {rss:.0f} MB, peak VmHWM {hwm:.0f} MB"
            f"  (goal <= 500 MB {verdict})"
        )
        return 0 if hwm <= 500 else 1
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    sys.exit(main())
