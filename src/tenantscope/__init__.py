"""tenantscope: per-tenant cost, usage and SLA for the LLM calls of B2B AI products.

This package's top level is the SDK surface only; the server lives behind the
``tenantscope[server]`` extra and is never imported from here::

    import tenantscope

    tenantscope.init(service_name="meetingmind")
    tenantscope.instrument_all()
    with tenantscope.context(tenant_id="apex-legal", user_id="u-42"):
        ...  # every span started here, auto-instrumented LLM calls included, is attributed
"""

from __future__ import annotations

import typing as _typing

__version__ = "0.1.0"

# after __version__: the SDK modules read it
from tenantscope.sdk._context import (
    context,
    get_context,
    set_customer_id,
    set_feature,
    set_session_id,
    set_tenant_id,
    set_user_id,
    set_workspace_id,
)
from tenantscope.sdk._guard import guard
from tenantscope.sdk._instrument import (
    instrument_all,
    instrument_anthropic,
    instrument_openai,
    uninstrument_anthropic,
    uninstrument_openai,
)
from tenantscope.sdk._limits import TenantLimitExceeded
from tenantscope.sdk._setup import flush, init, shutdown, stats
from tenantscope.sdk._spans import SpanHandle, current_span, span
from tenantscope.sdk._stats import ExportStats

if _typing.TYPE_CHECKING:
    from tenantscope import usage


def __getattr__(name: str) -> object:
    # ``tenantscope.usage`` without an import of its own, as the seeds write it; loaded on
    # first use so ``import tenantscope`` does not pay for urllib's HTTP stack
    if name == "usage":
        import importlib

        return importlib.import_module("tenantscope.usage")
    raise AttributeError(f"module 'tenantscope' has no attribute {name!r}")


__all__ = [
    "ExportStats",
    "SpanHandle",
    "TenantLimitExceeded",
    "__version__",
    "context",
    "current_span",
    "flush",
    "get_context",
    "guard",
    "init",
    "instrument_all",
    "instrument_anthropic",
    "instrument_openai",
    "set_customer_id",
    "set_feature",
    "set_session_id",
    "set_tenant_id",
    "set_user_id",
    "set_workspace_id",
    "shutdown",
    "span",
    "stats",
    "uninstrument_anthropic",
    "uninstrument_openai",
    "usage",
]
