"""tenantscope: per-tenant cost, usage and SLA for the LLM calls of B2B AI products.

This package's top level is the SDK surface only; the server lives behind the
``tenantscope[server]`` extra and is never imported from here.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
