"""Lint, format and strict type checks are part of the test suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_lint() -> None:
    res = run("ruff", "check", "src", "tests", "bench")
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_format() -> None:
    res = run("ruff", "format", "--check", "src", "tests", "bench")
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_strict_on_src() -> None:
    res = run("mypy", "src/tenantscope")
    assert res.returncode == 0, res.stdout + res.stderr
