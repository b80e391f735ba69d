"""The SDK's process-wide state: what ``tenantscope.init`` configured.

Instrumentations and span helpers read it through :func:`current`; only ``init``,
``shutdown`` and the fork handler replace it. Before ``init`` (or after ``shutdown``) the
state is the *default*: the global OpenTelemetry tracer provider, content capture off,
stream options untouched, so instrumented calls still produce spans for whatever provider
the app configured itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.trace import Tracer, TracerProvider


@dataclass(frozen=True)
class Runtime:
    # None means "the global provider at the time of the call" (the app may set it later)
    tracer_provider: TracerProvider | None = None
    enabled: bool = True
    capture_content: bool = False
    inject_stream_usage: bool = False

    def tracer(self, name: str, version: str | None = None) -> Tracer:
        if not self.enabled:
            return trace.NoOpTracer()
        return trace.get_tracer(name, version, tracer_provider=self.tracer_provider)


_current = Runtime()


def current() -> Runtime:
    return _current


def replace(runtime: Runtime) -> None:
    global _current
    _current = runtime
