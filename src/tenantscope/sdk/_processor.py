"""Span processors: stamping the tenant context on spans, and the one switch per provider.

``Dispatch`` is added once to each tracer provider the SDK is attached to and delegates to
the current pipeline. The SDK's ``TracerProvider`` has no way to remove a processor, so
``init`` called twice (or ``shutdown`` then ``init``) swaps the pipeline behind the switch
instead of stacking processors: spans are never stamped or exported twice.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from tenantscope import semconv
from tenantscope.sdk import _context
from tenantscope.sdk._stats import internal_error

# any name the server reads a tenant from: a span started with one keeps it
_TENANT_NAMES = semconv.ACCEPT["tenant_id"]


class Pipeline(SpanProcessor):
    """Stamp the context on start; hand ended spans to the exporter."""

    def __init__(
        self,
        exporter: SpanProcessor,
        extra: Mapping[str, str] | None = None,
        *,
        default_tenant: str | None = None,
    ) -> None:
        self.exporter = exporter
        # attributes for every span, e.g. deployment.environment when the app owns the
        # provider (its resource is not ours to change)
        self._extra = dict(extra or {})
        # the tenant of spans started outside any tenant context (init's tenant_id)
        self._default_tenant = default_tenant or None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            values = _context.current_attributes()
            default_tenant = self._default_tenant
            if not values and not self._extra and default_tenant is None:
                return
            existing = span.attributes or {}
            # an attribute the span was started with (an explicit tenant) wins; one
            # set_attributes call takes the span's lock once, not once per attribute
            missing = {
                key: value
                for attrs in (self._extra, values)
                for key, value in attrs.items()
                if key not in existing
            }
            if (
                default_tenant is not None
                and semconv.TENANT_ID not in values
                and not any(name in existing for name in _TENANT_NAMES)
            ):
                # the default sits under the context: a tenant set there, or given to
                # the span under any accepted name (netra.tenant_id...), beats it
                missing[semconv.TENANT_ID] = default_tenant
            if missing:
                span.set_attributes(missing)
        except Exception as exc:
            internal_error("span processor", exc)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            self.exporter.on_end(span)
        except Exception as exc:
            internal_error("span export queue", exc)

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


class Dispatch(SpanProcessor):
    """Forwards to the current pipeline, or does nothing when there is none."""

    def __init__(self) -> None:
        self.pipeline: Pipeline | None = None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pipeline = self.pipeline
        if pipeline is not None:
            pipeline.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        pipeline = self.pipeline
        if pipeline is not None:
            pipeline.on_end(span)

    def shutdown(self) -> None:
        # the provider shutting down (e.g. at interpreter exit) ends our export too
        pipeline, self.pipeline = self.pipeline, None
        if pipeline is not None:
            pipeline.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        pipeline = self.pipeline
        return True if pipeline is None else pipeline.force_flush(timeout_millis)
