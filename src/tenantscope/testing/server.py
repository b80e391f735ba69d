"""A real ``tenantscope serve`` in a child process, for tests and benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx


def free_port() -> int:
    """A port on the loopback address nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_key(data_dir: Path, name: str = "test", role: str = "admin") -> str:
    """A key of ``role`` made in ``data_dir`` (before or while its server runs): the
    token."""
    from tenantscope.server.keys import issue_key
    from tenantscope.storage.sqlite_config import SQLiteConfigStore

    data_dir.mkdir(parents=True, exist_ok=True)
    store = SQLiteConfigStore(data_dir / "config.db")
    try:
        return issue_key(store, role, name)[1]
    finally:
        store.close()


def wait_ready(
    url: str, proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float
) -> None:
    """Return once ``url/readyz`` answers 200; RuntimeError if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"tenantscope serve exited with {proc.returncode}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"tenantscope serve was not ready within {timeout:.0f} s")
        time.sleep(0.1)


def start_serve(
    data_dir: Path, env: Mapping[str, str] | None = None, *, timeout: float = 60.0
) -> tuple[subprocess.Popen[bytes], str]:
    """``tenantscope serve`` on a free loopback port over ``data_dir``, once ready:
    (process, base URL). ``env`` adds variables (``TENANTSCOPE_*``)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tenantscope.cli", "serve", "--port", str(port)],
        env={**os.environ, "TENANTSCOPE_DATA_DIR": str(data_dir), **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, timeout)
    return proc, url


def stop_serve(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Stop it cleanly (SIGTERM), or kill it after ``timeout``."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
