"""Resident memory of a real `tenantscope serve` answering the benchmark queries over the
query benchmark's data (10M spans by default).

    python bench/query.py                 # once, to generate the cached data
    python bench/server_memory.py         # starts a server on that data, queries over HTTP

Prints the server's VmRSS / VmHWM after the tenants list (7 days), tenant usage (24 h),
the 30-day hourly series and a trace lookup have each run 20 times, and the HTTP medians.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import httpx
from _serve import BenchServer, bench_main, time_gets


def _status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _measure(srv: BenchServer, runs: int) -> int:
    proc, url = srv.proc, srv.url
    t_to = int(srv.end.timestamp())
    day, week, month = 86400, 7 * 86400, 30 * 86400
    with httpx.Client(base_url=url, timeout=60, headers=srv.auth) as client:
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
            times = time_gets(client, path, params, runs)
            print(f"{name:40s} {statistics.median(times):10.1f}")
    rss, hwm = _status_mb(proc.pid, "VmRSS"), _status_mb(proc.pid, "VmHWM")
    verdict = "ok" if hwm <= 500 else "MISSED"
    print(
        f"server resident memory: VmRSS {rss:.0f} MB, peak VmHWM {hwm:.0f} MB"
        f"  (goal <= 500 MB {verdict})"
    )
    return 0 if hwm <= 500 else 1


if __name__ == "__main__":
    sys.exit(bench_main(__doc__, _measure))
