"""An llmobserve-compatible facade over the tenantscope SDK.

Code written for llmobserve runs with its import changed (and the collector URL pointing at
a tenantscope server)::

    import tenantscope.compat.llmobserve as llmobserve
    from tenantscope.compat.llmobserve import set_customer_id

    llmobserve.observe(collector_url="http://127.0.0.1:4318", tenant_id="acme", api_key=key)
    client.chat.completions.create(...)      # attributed to acme
    set_customer_id("end_user_42")           # acme's own customer, on the spans that follow

``observe`` is ``tenantscope.init`` + ``tenantscope.instrument_all()`` with ``tenant_id``
as the process-wide default tenant. Settings, in order: the argument, llmobserve's
environment variable (``LLMOBSERVE_COLLECTOR_URL``, ``LLMOBSERVE_API_KEY``,
``LLMOBSERVE_TENANT_ID``, ``LLMOBSERVE_CUSTOMER_ID``, ``LLMOBSERVE_FLUSH_INTERVAL_MS``,
``LLMOBSERVE_DISABLED``), then tenantscope's own. docs/sdk.md ("Porting from
llmobserve") lists what is supported and what is not.
"""

from __future__ import annotations

from typing import Any

import tenantscope
from tenantscope.compat._options import check_options, env_flag, env_text, instrument
from tenantscope.sdk._stats import log_once

__all__ = ["flush", "observe", "set_customer_id", "set_tenant_id"]

# observe() options that tenantscope has no use for (its proxy, agent and framework
# wrapping): accepted, noted once
_UNSUPPORTED = (
    "proxy_url",
    "auto_start_proxy",
    "use_instrumentors",
    "auto_detect_agents",
    "enable_tool_wrapping",
    "enable_llm_wrappers",
    "enable_http_fallback",
    "auto_wrap_frameworks",
)


def observe(
    collector_url: str | None = None,
    *,
    api_key: str | None = None,
    tenant_id: str | None = None,
    customer_id: str | None = None,
    flush_interval_ms: int | None = None,
    **llmobserve_options: Any,
) -> None:
    """Start the tenantscope SDK and trace the OpenAI and Anthropic clients.

    ``collector_url`` is the tenantscope server, ``api_key`` its ingest key, ``tenant_id``
    the process-wide default tenant (a tenant set per request with ``set_tenant_id`` or
    ``tenantscope.context`` wins), ``customer_id`` the current context's customer (as
    ``set_customer_id``), ``flush_interval_ms`` the export interval. llmobserve's other
    options are accepted and ignored. Calling it again replaces the previous setup.
    """
    # llmobserve's flags, False when not given, mean "not asked for"
    check_options(
        "observe",
        {k: v for k, v in llmobserve_options.items() if v is not False},
        _UNSUPPORTED,
    )
    interval_ms = flush_interval_ms
    if interval_ms is None:
        interval_ms = _env_int("LLMOBSERVE_FLUSH_INTERVAL_MS")
    settings: dict[str, Any] = {
        "endpoint": collector_url or env_text("LLMOBSERVE_COLLECTOR_URL"),
        "api_key": api_key or env_text("LLMOBSERVE_API_KEY"),
        "tenant_id": tenant_id or env_text("LLMOBSERVE_TENANT_ID"),
        "export_interval": None if interval_ms is None else interval_ms / 1000,
        # llmobserve turns itself off with LLMOBSERVE_DISABLED=1 only
        "disabled": True if env_flag("LLMOBSERVE_DISABLED", true=("1",)) else None,
    }
    tenantscope.init(**{k: v for k, v in settings.items() if v is not None})
    instrument(("openai", "anthropic"))
    customer = customer_id or env_text("LLMOBSERVE_CUSTOMER_ID")
    if customer:
        tenantscope.set_customer_id(customer)


def set_customer_id(customer_id: str | None = None) -> None:
    """Set the tenant's own end customer for the current context: the spans that follow
    carry it as ``tenantscope.customer_id``. None clears it."""
    tenantscope.set_customer_id(customer_id)


def set_tenant_id(tenant_id: str | None = None) -> None:
    """Set the tenant of the current context (wins over ``observe``'s default). None
    clears it, back to the default."""
    tenantscope.set_tenant_id(tenant_id)


def flush() -> bool:
    """Export what is queued now; True when it all went out (see ``tenantscope.flush``)."""
    return tenantscope.flush()


def _env_int(name: str) -> int | None:
    text = env_text(name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        log_once(f"llmobserve:{name}", "tenantscope: %s=%r is not an integer; ignored", name, text)
        return None
