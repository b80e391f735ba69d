"""A real `tenantscope serve` over the query benchmark's cached data, for the benchmarks
that measure the server over HTTP (server_memory.py, dashboard.py)."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tenantscope.testing.server import make_key, start_serve, stop_serve


@dataclass(frozen=True)
class BenchServer:
    proc: subprocess.Popen[bytes]
    url: str
    end: datetime  # where the synthetic data ends
    key: str  # an admin key of this server

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}


class MissingData(Exception):
    pass


@contextmanager
def serve_bench_data(rows: int) -> Iterator[BenchServer]:
    """Start the server on (symlinks to) the cached store of ``bench/query.py --rows``."""
    base = Path(tempfile.gettempdir()) / "tenantscope-bench"
    db = base / f"query-{rows}.duckdb"
    cfg = base / f"query-{rows}.config.sqlite"
    if not db.exists():
        raise MissingData(f"{db} is missing: run `python bench/query.py --rows {rows}` first")
    data = Path(tempfile.mkdtemp(prefix="tenantscope-bench-serve-"))
    (data / "events.duckdb").symlink_to(db)
    shutil.copyfile(cfg, data / "config.db")  # a copy: the key made below stays with it
    key = make_key(data, "benchmark")
    proc, url = start_serve(data, {"TENANTSCOPE_LOG_LEVEL": "warning"})
    try:
        meta = json.loads(Path(str(db) + ".meta.json").read_text())
        yield BenchServer(proc, url, datetime.fromisoformat(meta["end"]), key)
    finally:
        stop_serve(proc)


def time_gets(client: httpx.Client, path: str, params: dict[str, Any], runs: int) -> list[float]:
    """Milliseconds to the last byte of ``runs`` GETs of one URL (each must succeed)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        resp = client.get(path, params=params)
        times.append((time.perf_counter() - t0) * 1000)
        resp.raise_for_status()
    return times


def bench_main(doc: str, measure: Callable[[BenchServer, int], int]) -> int:
    """The command line of a benchmark over the cached data: ``--rows``, ``--runs``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    try:
        with serve_bench_data(args.rows) as srv:
            return measure(srv, args.runs)
    except MissingData as exc:
        print(exc)
        return 2
