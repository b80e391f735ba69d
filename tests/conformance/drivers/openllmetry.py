"""OpenLLMetry instrumentation packages (opentelemetry-instrumentation-openai / -anthropic).

Set up as their READMEs say: an SDK TracerProvider with an OTLP/HTTP exporter, then
``OpenAIInstrumentor().instrument()`` and ``AnthropicInstrumentor().instrument()``. No tenant
notion: the call runs inside the app's own span with ``tenant.id`` (plain OTel tracer), or,
with ``CONFORMANCE_TENANT_VIA=resource`` (one process per shape), ``OTEL_RESOURCE_ATTRIBUTES``
carries ``tenant.id`` and there is no app span. Content capture off
(``TRACELOOP_TRACE_CONTENT=false``).
"""

from __future__ import annotations

import os

import _common
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider(resource=Resource.create())
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)

OpenAIInstrumentor().instrument()
AnthropicInstrumentor().instrument()

via_resource = os.environ.get("CONFORMANCE_TENANT_VIA") == "resource"
_common.run(
    wrap=_common.no_wrap if via_resource else _common.otel_app_span,
    flush=provider.shutdown,
)
