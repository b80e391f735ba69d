"""Server time of every dashboard page over the query benchmark's data (10M spans).

    python bench/query.py              # once, to generate the cached data
    python bench/dashboard.py          # starts `tenantscope serve` on it, times each page

Each page is requested --runs times (after one warm-up) over HTTP on loopback, with a
7-day custom range ending where the data ends; the time from request to the last byte is
an upper bound of the server's time. Prints median and p95 per page against the goal
(p95 <= 250 ms) and exits 1 when a page misses it.
"""

from __future__ import annotations

import re
import statistics
import sys
from datetime import datetime, timedelta, timezone

import httpx
from _serve import BenchServer, bench_main, time_gets

GOAL_MS = 250.0


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _measure(srv: BenchServer, runs: int) -> int:
    end = srv.end
    week = {"from": _iso(end - timedelta(days=7)), "to": _iso(end)}
    day = {"from": _iso(end - timedelta(days=1)), "to": _iso(end)}
    headers = {"accept": "text/html", **srv.auth}
    with httpx.Client(base_url=srv.url, timeout=60, headers=headers) as client:
        traces = client.get("/traces", params=day).text
        trace_id = re.search(r'data-trace="([0-9a-f]+)"', traces)
        pages: dict[str, tuple[str, dict[str, str]]] = {
            "overview, 7 days": ("/", week),
            "tenants, 7 days, by cost": ("/tenants", week),
            "tenants, 7 days, by p95": ("/tenants", {**week, "sort": "p95"}),
            "tenants search 'tenant-00'": ("/tenants", {**week, "q": "tenant-00"}),
            "tenant detail, largest": ("/tenant", {**week, "tenant_id": "tenant-0001"}),
            "tenant detail, mid-size": ("/tenant", {**week, "tenant_id": "tenant-0030"}),
            "traces, 7 days": ("/traces", week),
            "traces of one tenant": ("/traces", {**week, "tenant": "tenant-0030"}),
            "users, 7 days": ("/users", week),
            "sessions, 7 days": ("/sessions", week),
            "SLA, 7 days": ("/sla", week),
            "prices, 7 days": ("/prices", week),
        }
        if trace_id:
            pages["trace detail"] = (f"/traces/{trace_id.group(1)}", {})
        print(f"{'page (HTML over HTTP)':32s} {'median ms':>10s} {'p95 ms':>8s}  goal")
        missed = 0
        for name, (path, params) in pages.items():
            client.get(path, params=params).raise_for_status()  # warm-up
            times = sorted(time_gets(client, path, params, runs))
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            ok = p95 <= GOAL_MS
            missed += not ok
            verdict = "ok" if ok else "MISSED"
            print(
                f"{name:32s} {statistics.median(times):10.1f} {p95:8.1f}"
                f"  <= {GOAL_MS:.0f} ms {verdict}"
            )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(bench_main(__doc__, _measure))
