"""The SDK's public surface: ``tenantscope.__all__`` lists exactly the public names."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import types

import tenantscope

# the documented surface; adding to it is a decision, so it is spelled out here
EXPECTED = {
    "__version__",
    "init",
    "shutdown",
    "flush",
    "stats",
    "ExportStats",
    "context",
    "get_context",
    "set_tenant_id",
    "set_user_id",
    "set_session_id",
    "set_workspace_id",
    "set_feature",
    "set_customer_id",
    "span",
    "current_span",
    "SpanHandle",
    "instrument_openai",
    "instrument_anthropic",
    "instrument_all",
    "uninstrument_openai",
    "uninstrument_anthropic",
    "usage",
    "guard",
    "TenantLimitExceeded",
}


def public_members() -> set[str]:
    names = set()
    for name in dir(tenantscope):
        if name.startswith("_") or name == "annotations":
            continue
        if isinstance(getattr(tenantscope, name), types.ModuleType):
            continue  # submodules (tenantscope.sdk, .errors, ...) are reached by path
        names.add(name)
    return names


def test_all_is_complete_and_sorted() -> None:
    assert set(tenantscope.__all__) == EXPECTED
    assert public_members() <= set(tenantscope.__all__)
    assert tenantscope.__all__ == sorted(tenantscope.__all__)
    assert len(set(tenantscope.__all__)) == len(tenantscope.__all__)


def test_every_name_in_all_is_importable_and_documented() -> None:
    for name in tenantscope.__all__:
        value = getattr(tenantscope, name)
        if name == "__version__":
            assert isinstance(value, str)
            continue
        if name == "usage":
            assert value is importlib.import_module("tenantscope.usage")
            for fn in ("get_tenant_usage", "list_traces"):
                assert callable(getattr(value, fn))
            continue
        assert inspect.getdoc(value), f"{name} has no docstring"


def test_star_import_and_lazy_usage() -> None:
    probe = (
        "import sys\n"
        "import tenantscope\n"
        "assert 'tenantscope.usage' not in sys.modules\n"
        "from tenantscope import *\n"
        "assert callable(init) and callable(usage.get_tenant_usage)\n"
        "heavy = [m for m in ('openai', 'anthropic', 'requests', 'urllib.request') "
        "if m in sys.modules]\n"
        "print(heavy)\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    # urllib.request arrives with ``usage`` (star import); the rest never at import
    assert res.stdout.strip() == "['urllib.request']"
