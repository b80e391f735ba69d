"""The tenantscope SDK. The public surface is re-exported by ``tenantscope``; this package
adds what operators look at: ``stats()`` and the resolved configuration."""

from __future__ import annotations

from tenantscope.sdk._config import SETTINGS, Config, Setting
from tenantscope.sdk._context import context, get_context
from tenantscope.sdk._setup import current_config, flush, init, shutdown, stats
from tenantscope.sdk._spans import SpanHandle, current_span, span
from tenantscope.sdk._stats import ExportStats

__all__ = [
    "SETTINGS",
    "Config",
    "ExportStats",
    "Setting",
    "SpanHandle",
    "context",
    "current_config",
    "current_span",
    "flush",
    "get_context",
    "init",
    "shutdown",
    "span",
    "stats",
]
