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

from tenantscope.sdk import _context
from tenantscope.sdk._stats import internal_error


class Pipeline(SpanProcessor):
    """Stamp the context on start; hand ended spans to the exporter."""

    def __init__(self, exporter: SpanProcessor, extra: Mapping[str, str] | None = None) -> None:
        self.exporter = exporter
        # attributes for every span, e.g. deployment.environment when the app owns the
        # provider (its resource is not ours to change)
        self._extra = dict(extra or {})

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            values = _context.current_attributes()
            if not values and not self._extra:
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
