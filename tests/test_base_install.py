"""``pip install tenantscope`` (no extras) is the SDK alone: importing it, or its drop-in
facades (``tenantscope.compat``), must not need any server dependency."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]

SERVER_ONLY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "jinja2",
    "duckdb",
    "pyarrow",
    "sqlalchemy",
    "alembic",
    "genai_prices",
    "typer",
    "rich",
    "platformdirs",
    "httpx",
    "pydantic",
    "google.protobuf",
)

# Imports tenantscope with every server-only package made unimportable, as in a base install.
PROBE = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError("blocked server dependency: " + name)
        return None
sys.meta_path.insert(0, Block())
import tenantscope, tenantscope.records, tenantscope.semconv, tenantscope.errors
import tenantscope.compat.netra, tenantscope.compat.llmobserve
from tenantscope.compat.netra.instrumentation.instruments import InstrumentSet
loaded = [m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in BLOCKED)]
assert not loaded, loaded
print("ok", tenantscope.__version__)
"""


def test_import_needs_no_server_dependency() -> None:
    res = subprocess.run(
        [sys.executable, "-c", PROBE.format(blocked=SERVER_ONLY)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok")


def test_base_dependencies_are_opentelemetry_only() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = meta["dependencies"]
    assert base and all(dep.startswith("opentelemetry-") for dep in base)
    assert "server" in meta["optional-dependencies"]
