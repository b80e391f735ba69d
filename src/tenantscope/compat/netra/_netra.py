"""The ``Netra`` class: netra's entry points mapped onto the tenantscope SDK.

Settings, in order: the argument; netra's environment variable (``NETRA_OTLP_ENDPOINT``,
``NETRA_API_KEY``, ``NETRA_HEADERS``, ``NETRA_APP_NAME``, ``NETRA_ENV``,
``NETRA_TRACE_CONTENT``); then tenantscope's own setting (``TENANTSCOPE_*`` or
``OTEL_*``) and default. The API key is the ``x-api-key`` header netra code passes (sent
to tenantscope as ``Authorization: Bearer``), else ``NETRA_API_KEY``.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any, ClassVar

from opentelemetry.util.re import parse_env_headers

import tenantscope
from tenantscope.compat._options import check_options, env_flag, env_text, instrument
from tenantscope.compat.netra._span import SpanType, SpanWrapper, start_span
from tenantscope.compat.netra._usage import Usage
from tenantscope.compat.netra.instrumentation.instruments import InstrumentSet
from tenantscope.sdk._stats import log_once

# Netra.init options that tenantscope has no use for: accepted, noted once
_UNSUPPORTED_INIT = (
    "disable_batch",
    "debug_mode",
    "resource_attributes",
    "enable_scrubbing",
    "blocked_spans",
    "enable_metrics",
    "metrics_export_interval_ms",
    "export_auto_metrics",
    "root_instruments",
)
_SUPPORTED_LIBRARIES = ("openai", "anthropic")


class Netra:
    """netra's ``Netra`` over tenantscope: ``init``, the tenant/user/session setters,
    ``start_span``, ``usage.get_tenant_usage`` and ``shutdown``."""

    usage: ClassVar[Usage] = Usage()

    @classmethod
    def init(
        cls,
        app_name: str | None = None,
        headers: str | Mapping[str, str] | None = None,
        *,
        environment: str | None = None,
        trace_content: bool | None = None,
        instruments: Set[InstrumentSet] | None = None,
        block_instruments: Set[InstrumentSet] | None = None,
        endpoint: str | None = None,
        **netra_options: Any,
    ) -> None:
        """Start the tenantscope SDK and instrument the client libraries.

        ``app_name`` is the service name, ``headers`` (``"x-api-key=..."`` or a mapping)
        carries the API key, ``trace_content`` records prompts and completions,
        ``instruments`` (default: all) and ``block_instruments`` choose among OpenAI and
        Anthropic. ``endpoint`` (tenantscope's, not netra's) is the server's base URL.
        netra's other options are accepted and ignored. Calling it again replaces the
        previous setup (netra ignores a second call).
        """
        check_options("Netra.init", netra_options, _UNSUPPORTED_INIT)
        extra = _headers(headers if headers is not None else env_text("NETRA_HEADERS"))
        api_key = _pop_key(extra, "x-api-key") or env_text("NETRA_API_KEY")
        settings: dict[str, Any] = {
            "endpoint": endpoint or env_text("NETRA_OTLP_ENDPOINT"),
            "api_key": api_key,
            "headers": extra or None,
            "service_name": app_name or env_text("NETRA_APP_NAME"),
            "environment": environment or env_text("NETRA_ENV"),
            "capture_content": (
                trace_content if trace_content is not None else env_flag("NETRA_TRACE_CONTENT")
            ),
        }
        config = tenantscope.init(**{k: v for k, v in settings.items() if v is not None})
        # resolved values: queries go where the spans go, with the same key
        cls.usage = Usage(config.endpoint, config.api_key)
        instrument(_libraries(instruments, block_instruments))

    @classmethod
    def shutdown(cls) -> None:
        """Export what is queued and stop (also done at interpreter exit)."""
        tenantscope.shutdown()

    @classmethod
    def set_tenant_id(cls, tenant_id: str) -> None:
        """Set the tenant of the current context: every span started after it (the
        auto-traced calls included) is attributed to it."""
        if _given("tenant_id", tenant_id):
            tenantscope.set_tenant_id(tenant_id)

    @classmethod
    def set_user_id(cls, user_id: str) -> None:
        """Set the end user of the current context."""
        if _given("user_id", user_id):
            tenantscope.set_user_id(user_id)

    @classmethod
    def set_session_id(cls, session_id: str) -> None:
        """Set the session of the current context."""
        if _given("session_id", session_id):
            tenantscope.set_session_id(session_id)

    @classmethod
    def start_span(
        cls,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        module_name: str | None = None,
        as_type: SpanType | None = SpanType.SPAN,
    ) -> SpanWrapper:
        """A span around a block: ``with Netra.start_span("name") as span: ...``.
        ``module_name`` is accepted and ignored (spans come from tenantscope's tracer)."""
        del module_name
        return start_span(name, attributes, as_type)


def _given(name: str, value: object) -> bool:
    # netra ignores an empty id (with a warning) rather than clearing the field
    if value is None or value == "":
        log_once(f"netra:empty:{name}", "tenantscope: Netra.set_%s: an empty id is ignored", name)
        return False
    return True


def _headers(value: str | Mapping[str, str] | None) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, str):
        # netra reads the OTLP headers format (k1=v1,k2=v2, URL-encoded) with OTel's parser
        return dict(parse_env_headers(value))
    return {str(k): str(v) for k, v in value.items()}


def _pop_key(headers: dict[str, str], name: str) -> str | None:
    for key in list(headers):
        if key.lower() == name:
            return headers.pop(key).strip() or None
    return None


def _libraries(
    instruments: Set[InstrumentSet] | None, blocked: Set[InstrumentSet] | None
) -> list[str]:
    wanted = {InstrumentSet.ALL} if instruments is None else set(instruments)
    refused = set(blocked or ())
    if InstrumentSet.ALL in refused:
        return []
    names = {m.value for m in wanted if isinstance(m, InstrumentSet)}
    return [
        lib
        for lib in _SUPPORTED_LIBRARIES
        if (InstrumentSet.ALL in wanted or lib in names)
        and lib not in {m.value for m in refused if isinstance(m, InstrumentSet)}
    ]
