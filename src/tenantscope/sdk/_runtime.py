"""The SDK's process-wide state: what ``tenantscope.init`` configured.

Instrumentations and span helpers read it through :func:`current`; only ``init``,
``shutdown`` and the fork handler replace it. Before ``init`` (or after ``shutdown``) the
state is the *default*: the global OpenTelemetry tracer provider, content capture off,
stream options untouched, so instrumented calls still produce spans for whatever provider
the app configured itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import Tracer, TracerProvider

if TYPE_CHECKING:
    from tenantscope.sdk._limits import Limiter

_NO_OP = trace.NoOpTracer()


@dataclass(frozen=True)
class Runtime:
    # None means "the global provider at the time of the call" (the app may set it later)
    tracer_provider: TracerProvider | None = None
    enabled: bool = True
    capture_content: bool = False
    inject_stream_usage: bool = False
    # asks the limit service (guard() always; instrumented calls when enforce_limits)
    limiter: Limiter | None = None
    # one tracer per (name, version, provider) for the life of this runtime: init and
    # shutdown replace the runtime, and the provider is part of the key for the global one
    _tracers: dict[tuple[str, str | None, TracerProvider], Tracer] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def tracer(self, name: str, version: str | None = None) -> Tracer:
        if not self.enabled:
            return _NO_OP
        provider = self.tracer_provider or trace.get_tracer_provider()
        key = (name, version, provider)
        tracer = self._tracers.get(key)
        if tracer is None:
            tracer = self._tracers[key] = trace.get_tracer(name, version, tracer_provider=provider)
        return tracer


_current = Runtime()


def current() -> Runtime:
    return _current


def replace(runtime: Runtime) -> None:
    global _current
    _current = runtime
